"""Contracts are validated completely at write time; each error names the JSON path to fix."""

from __future__ import annotations

from typing import Any

import pytest

from settlement.domain.contract import ContractInvalid, load_contract
from tests.unit.settlement.builders import contract

SAVINGS = {
    "id": "savings",
    "kind": "shared_savings",
    "expenditure": {"input": "expenditure"},
    "benchmark": {"input": "benchmark"},
    "savings_rate": "0.50",
}


def errors_of(*terms: dict[str, Any], **overrides: Any) -> dict[str, str]:
    with pytest.raises(ContractInvalid) as refused:
        contract(*terms, **overrides)
    return {e.path: e.message for e in refused.value.errors}


def test_unknown_term_kind() -> None:
    assert (
        "unknown or missing term kind" in errors_of({**SAVINGS, "kind": "shared_saving"})["$.terms[0].kind"]
    )


def test_unknown_kpi_and_unknown_dimension() -> None:
    found = errors_of(
        {"id": "a", "kind": "kpi_incentive", "kpi": "uptime", "direction": "higher_is_better"},
        {
            "id": "b",
            "kind": "sla_credit",
            "kpi": {"kpi": "uptime_pct", "dimension": {"category": "ehr"}},
            "fee": "monthly_fee",
            "tiers": [{"below": "99", "credit_rate": "0.1"}],
        },
    )
    assert "unknown KPI 'uptime'" in found["$.terms[0].kpi"]
    assert "no dimension 'category'" in found["$.terms[1].kpi"]


@pytest.mark.parametrize("value", ["EHR", "ehr system", "", "e\x00hr", "x" * 65])
def test_a_dimension_value_must_be_one_events_can_carry(value: str) -> None:
    """Events carry dimension values as lower-case labels: "EHR" would never match a KPI cell."""
    found = errors_of(
        {
            "id": "b",
            "kind": "sla_credit",
            "kpi": {"kpi": "uptime_pct", "dimension": {"system": value}},
            "fee": "monthly_fee",
            "tiers": [{"below": "99", "credit_rate": "0.1"}],
        },
    )
    assert "lower-case letters, digits or '_'" in found["$.terms[0].kpi.dimension"]


def test_bad_rates_and_misspelt_cap_order() -> None:
    found = errors_of({**SAVINGS, "savings_rate": "1.5", "cap_order": "rate_than_cap", "quality_gate": 0.5})
    assert "between" in found["$.terms[0].savings_rate"]
    assert "rate_then_cap" in found["$.terms[0].cap_order"]
    assert "decimal string" in found["$.terms[0].quality_gate"]


def test_a_value_source_that_names_no_input() -> None:
    found = errors_of({**SAVINGS, "expenditure": {"inptu": "expenditure"}})
    assert '{"input": "<name>"}' in found["$.terms[0].expenditure"]


def test_tiers_out_of_order() -> None:
    found = errors_of(
        {
            "id": "t",
            "kind": "kpi_incentive",
            "kpi": "cpoe_rate",
            "direction": "higher_is_better",
            "curve": "tiers",
            "tiers": [{"threshold": "0.9", "amount": "10"}, {"threshold": "0.8", "amount": "20"}],
        }
    )
    assert "tiers out of order" in found["$.terms[0].tiers[1].threshold"]


def test_tier_amounts_must_not_fall_as_tiers_get_more_demanding() -> None:
    found = errors_of(
        {
            "id": "t",
            "kind": "kpi_incentive",
            "kpi": "cpoe_rate",
            "direction": "higher_is_better",
            "curve": "tiers",
            "tiers": [
                {"threshold": "0.7", "amount": "-5"},
                {"threshold": "0.8", "amount": "20"},
                {"threshold": "0.9", "amount": "10"},
            ],
        }
    )
    # A negative tier is a penalty (docs/contracts.md); only the fall from 20 to 10 is refused.
    assert "$.terms[0].tiers[0].amount" not in found
    assert "$.terms[0].tiers[1].amount" not in found
    assert "never pay less" in found["$.terms[0].tiers[2].amount"]


def test_linear_incentive_target_must_be_beyond_the_baseline() -> None:
    found = errors_of(
        {
            "id": "t",
            "kind": "kpi_incentive",
            "kpi": "claim_denial_rate",
            "direction": "lower_is_better",
            "baseline": "0.10",
            "target": "0.12",
        }
    )
    assert "below the baseline" in found["$.terms[0].target"]


def test_sla_fee_must_be_a_contract_fee_and_bands_in_order() -> None:
    found = errors_of(
        {
            "id": "s",
            "kind": "sla_credit",
            "kpi": "uptime_pct",
            "fee": "platform_fee",
            "tiers": [{"below": "99", "credit_rate": "0.1"}, {"below": "99.5", "credit_rate": "0.2"}],
        },
        {
            "id": "c",
            "kind": "risk_corridor",
            "actual": {"input": "a"},
            "target": {"input": "t"},
            "bands": [{"from": "0.05", "share": "0.5"}, {"from": "0.03", "to": "0.04", "share": "0.8"}],
        },
    )
    assert "not a key of the contract's fees" in found["$.terms[0].fee"]
    assert "tiers out of order" in found["$.terms[0].tiers[1].below"]
    assert "open-ended" in found["$.terms[1].bands[0].to"]


def test_contract_level_fields() -> None:
    found = errors_of(
        SAVINGS,
        currency="XYZ",
        timezone="Mars/Olympus",
        vendor="mission-health",
        period="week",
        end="2025-12-31",
        terms=[SAVINGS, SAVINGS],
    )
    assert set(found) >= {"$.currency", "$.timezone", "$.period"}


def test_cross_field_rules_after_the_shape_is_right() -> None:
    found = errors_of(SAVINGS, vendor="mission-health", end="2025-12-31", terms=[SAVINGS, SAVINGS])
    assert set(found) == {"$.vendor", "$.end", "$.terms[1].id"}


def test_numbers_must_be_decimal_strings() -> None:
    found = errors_of({**SAVINGS, "min_savings_rate": 0.02})
    assert "decimal string" in found["$.terms[0].min_savings_rate"]


def test_dates_outside_the_accepted_range_are_refused_and_a_stored_one_still_loads() -> None:
    found = errors_of(SAVINGS, start="0026-01-01", end="2100-01-01")
    assert found == {
        "$.start": "must be a date from 2000-01-01 to 2099-12-31",
        "$.end": "must be a date from 2000-01-01 to 2099-12-31",
    }
    # A contract stored before the rule is still read (the period watch and the API must reach it).
    stored = contract(SAVINGS).as_document() | {"start": "0026-01-01"}
    assert load_contract(stored).start.year == 26
