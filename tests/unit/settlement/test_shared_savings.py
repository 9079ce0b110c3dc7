"""shared_savings at its boundaries (docs/contracts.md): MSR, caps, cap order, quality, losses."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from settlement.domain.contract import ContractInvalid
from tests.unit.settlement.builders import contract, line, step


def savings_term(**overrides: Any) -> dict[str, Any]:
    return {
        "id": "savings",
        "kind": "shared_savings",
        "expenditure": {"input": "expenditure"},
        "benchmark": {"input": "benchmark"},
        "min_savings_rate": "0.02",
        "savings_rate": "0.50",
        **overrides,
    }


def amount(term: dict[str, Any], benchmark: str, expenditure: str, **inputs: str) -> Decimal:
    return line(term, {"benchmark": benchmark, "expenditure": expenditure, **inputs}).amount


def test_savings_exactly_at_the_minimum_savings_rate_are_shared() -> None:
    assert amount(savings_term(), "1000000", "980000") == Decimal("10000.00")


def test_savings_just_below_the_minimum_savings_rate_are_not_shared() -> None:
    result = line(savings_term(), {"benchmark": "1000000", "expenditure": "980000.01"})
    assert result.amount == Decimal("0.00")
    assert result.reason == "below_minimum_savings_rate"
    assert step(result, "savings_rate") == Decimal("0.01999999")


def test_above_threshold_shares_only_savings_beyond_the_threshold() -> None:
    result = line(savings_term(basis="above_threshold"), {"benchmark": "1000000", "expenditure": "900000"})
    assert step(result, "shareable_savings") == Decimal("80000.00")
    assert result.amount == Decimal("40000.00")


def test_smallest_savings_cap_binds() -> None:
    term = savings_term(
        savings_caps=[{"rate": "0.10", "of": "benchmark"}, {"rate": "0.50", "of": {"input": "fees_paid"}}]
    )
    result = line(term, {"benchmark": "1000000", "expenditure": "600000", "fees_paid": "60000"})
    assert step(result, "cap") == Decimal("30000.00")
    assert step(result, "shared_before_caps") == Decimal("200000.00")
    assert result.amount == Decimal("30000.00")


def test_cap_that_does_not_bind_leaves_the_shared_amount() -> None:
    term = savings_term(savings_caps=[{"rate": "0.10", "of": "benchmark"}])
    assert amount(term, "1000000", "900000") == Decimal("50000.00")


def test_cap_then_rate_caps_the_savings_before_sharing() -> None:
    caps = [{"rate": "0.10", "of": "benchmark"}]
    rate_first = amount(savings_term(savings_caps=caps), "1000000", "700000")
    cap_first = amount(savings_term(savings_caps=caps, cap_order="cap_then_rate"), "1000000", "700000")
    assert rate_first == Decimal("100000.00")  # min(300,000 × 0.5, 100,000)
    assert cap_first == Decimal("50000.00")  # min(300,000, 100,000) × 0.5


def test_quality_score_scales_the_sharing_rate_and_the_reduction_comes_off_last() -> None:
    term = savings_term(quality_score={"input": "quality"}, savings_payment_reduction="0.02")
    result = line(term, {"benchmark": "1000000", "expenditure": "900000", "quality": "0.8"})
    assert step(result, "final_sharing_rate") == Decimal("0.400")
    assert step(result, "payment_reduction") == Decimal("800.000")
    assert result.amount == Decimal("39200.00")


def test_quality_below_the_gate_shares_nothing() -> None:
    term = savings_term(quality_score={"input": "quality"}, quality_gate="0.5")
    result = line(term, {"benchmark": "1000000", "expenditure": "900000", "quality": "0.49"})
    assert (result.amount, result.reason) == (Decimal("0.00"), "quality_gate_not_met")
    assert amount(term, "1000000", "900000", quality="0.5") == Decimal("25000.00")


def test_one_sided_terms_never_owe_losses() -> None:
    result = line(savings_term(), {"benchmark": "1000000", "expenditure": "1100000"})
    assert (result.amount, result.reason) == (Decimal("0.00"), "one_sided")


def test_losses_below_minimum_loss_rate_are_not_owed() -> None:
    term = savings_term(loss_rate="0.30", min_loss_rate="0.03")
    result = line(term, {"benchmark": "1000000", "expenditure": "1029999"})
    assert (result.amount, result.reason) == (Decimal("0.00"), "below_minimum_loss_rate")
    assert amount(term, "1000000", "1030000") == Decimal("-9000.00")


def test_loss_rate_is_one_minus_final_sharing_rate_within_its_bounds() -> None:
    bounded = {"one_minus_final_savings_rate": {"min": "0.40", "max": "0.75"}}
    term = savings_term(savings_rate="0.75", quality_score={"input": "quality"}, loss_rate=bounded)
    # 1 − 0.75 × 0.9 = 0.325 → raised to the 0.40 minimum
    low = line(term, {"benchmark": "1000000", "expenditure": "1100000", "quality": "0.9"})
    assert step(low, "loss_sharing_rate") == Decimal("0.40")
    assert low.amount == Decimal("-40000.00")
    # 1 − 0.75 × 0.2 = 0.85 → lowered to the 0.75 maximum
    high = line(term, {"benchmark": "1000000", "expenditure": "1100000", "quality": "0.2"})
    assert step(high, "loss_sharing_rate") == Decimal("0.75")


def test_loss_caps_limit_what_is_owed() -> None:
    term = savings_term(loss_rate="0.50", loss_caps=[{"rate": "0.05", "of": "benchmark"}])
    assert amount(term, "1000000", "1300000") == Decimal("-50000.00")


def test_mssp_sliding_scale_sets_the_minimum_savings_rate_from_the_population() -> None:
    term = savings_term(min_savings_rate={"mssp_one_sided_scale": {"input": "population"}})
    result = line(term, {"benchmark": "1000000", "expenditure": "970000", "population": "9896"})
    assert step(result, "min_savings_rate") == Decimal("0.03010310310310310310310310310")
    assert (result.amount, result.reason) == (Decimal("0.00"), "below_minimum_savings_rate")


def test_missing_input_gives_a_line_with_a_reason() -> None:
    result = line(savings_term(), {"benchmark": "1000000"})
    assert (result.amount, result.reason) == (Decimal("0.00"), "missing_input")
    assert "expenditure" in (result.detail or "")


def test_half_even_rounding_happens_once_at_the_line_amount() -> None:
    # 0.5 × 0.025 = 0.0125 → 0.01 (half-even), where rounding each step would give 0.02
    term = savings_term(min_savings_rate="0")
    assert amount(term, "1", "0.975") == Decimal("0.01")


def test_zero_benchmark_is_refused_at_validation() -> None:
    with pytest.raises(ContractInvalid) as refused:
        contract(savings_term(benchmark="0"))
    assert [e.path for e in refused.value.errors] == ["$.terms[0].benchmark"]
