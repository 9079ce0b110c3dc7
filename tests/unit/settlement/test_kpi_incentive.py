"""kpi_incentive: linear and tiers, both directions, min_denominator (docs/contracts.md)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from tests.unit.settlement.builders import line, reading, step

Q1 = (date(2026, 1, 1), date(2026, 4, 1))


def incentive(**overrides: Any) -> dict[str, Any]:
    return {
        "id": "cpoe",
        "kind": "kpi_incentive",
        "kpi": "cpoe_rate",
        "direction": "higher_is_better",
        "baseline": "0.80",
        "target": "0.90",
        "floor": "0.70",
        "max_reward": "100000.00",
        "max_penalty": "50000.00",
        **overrides,
    }


def at(value: str, term: dict[str, Any] | None = None, denominator: str = "1000") -> Any:
    kpi = (term or incentive())["kpi"]
    name = kpi if isinstance(kpi, str) else kpi["kpi"]
    return line(term or incentive(), kpis={(name, *Q1): reading(value, "0", denominator)})


def test_linear_reward_grows_from_baseline_to_target() -> None:
    assert at("0.85").amount == Decimal("50000.00")
    assert at("0.80").amount == Decimal("0.00")


def test_linear_reward_is_capped_at_the_target() -> None:
    assert at("0.90").amount == Decimal("100000.00")
    assert at("0.99").amount == Decimal("100000.00")


def test_linear_penalty_grows_to_the_floor_and_is_capped_there() -> None:
    assert at("0.75").amount == Decimal("-25000.00")
    assert at("0.70").amount == Decimal("-50000.00")
    assert at("0.10").amount == Decimal("-50000.00")


def test_lower_is_better_mirrors_the_curve() -> None:
    term = incentive(
        kpi="claim_denial_rate", direction="lower_is_better", baseline="0.10", target="0.05", floor="0.15"
    )
    assert at("0.075", term).amount == Decimal("50000.00")
    assert at("0.04", term).amount == Decimal("100000.00")
    assert at("0.125", term).amount == Decimal("-25000.00")


def test_tiers_pay_the_most_demanding_tier_reached_and_a_threshold_counts_when_equal() -> None:
    tiers = [
        {"threshold": "0.80", "amount": "10000.00"},
        {"threshold": "0.85", "amount": "25000.00"},
        {"threshold": "0.90", "amount": "50000.00"},
    ]
    term = incentive(curve="tiers", tiers=tiers, baseline=None, target=None, floor=None, max_penalty="0")
    assert at("0.85", term).amount == Decimal("25000.00")
    assert at("0.8499", term).amount == Decimal("10000.00")
    assert at("0.95", term).amount == Decimal("50000.00")
    below = at("0.79", term)
    assert (below.amount, below.reason) == (Decimal("0.00"), "no_tier_reached")


def test_tiers_for_a_lower_is_better_kpi() -> None:
    tiers = [{"threshold": "0.20", "amount": "5000.00"}, {"threshold": "0.10", "amount": "8000.00"}]
    term = incentive(
        kpi="claim_denial_rate",
        direction="lower_is_better",
        curve="tiers",
        tiers=tiers,
        baseline=None,
        target=None,
        floor=None,
        max_penalty="0",
    )
    assert at("0.15", term).amount == Decimal("5000.00")
    assert at("0.10", term).amount == Decimal("8000.00")
    assert at("0.21", term).amount == Decimal("0.00")


def test_below_min_denominator_the_term_pays_nothing() -> None:
    term = incentive(min_denominator="100")
    thin = at("0.99", term, denominator="99")
    assert (thin.amount, thin.reason) == (Decimal("0.00"), "insufficient_sample")
    assert at("0.99", term, denominator="100").amount == Decimal("100000.00")


def test_the_kpi_reading_is_recorded_with_numerator_and_denominator() -> None:
    result = line(incentive(), kpis={("cpoe_rate", *Q1): reading("0.85", "850", "1000")})
    assert result.inputs["kpi"] == {
        "kpi": "cpoe_rate",
        "dimension": {},
        "value": "0.85",
        "numerator": "850",
        "denominator": "1000",
        "sample_size": 1000,
        "status": "mature",
        "complete": True,
        "missing": [],
    }
    assert step(result, "progress") == Decimal("0.5")


def test_a_kpi_without_data_gives_a_reason_not_an_error() -> None:
    result = line(incentive(), kpis={("cpoe_rate", *Q1): reading(None, "0", "0")})
    assert (result.amount, result.reason) == (Decimal("0.00"), "no_kpi_data")
