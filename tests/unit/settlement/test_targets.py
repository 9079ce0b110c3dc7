"""The KPI levels contracts aim at, as dashboards and alerts see them."""

from __future__ import annotations

from decimal import Decimal

from settlement.domain.targets import KpiTarget, kpi_targets
from tests.unit.settlement.builders import contract


def test_targets_of_linear_tiered_and_sla_terms_and_none_for_sourced_levels() -> None:
    c = contract(
        {
            "id": "cpoe",
            "kind": "kpi_incentive",
            "kpi": "cpoe_rate",
            "direction": "higher_is_better",
            "baseline": "0.6",
            "target": "0.9",
        },
        {
            "id": "denials",
            "kind": "kpi_incentive",
            "kpi": "claim_denial_rate",
            "direction": "lower_is_better",
            "curve": "tiers",
            "tiers": [{"threshold": "0.10", "amount": "10"}, {"threshold": "0.05", "amount": "20"}],
        },
        {
            "id": "sla",
            "kind": "sla_credit",
            "kpi": {"kpi": "uptime_pct", "dimension": {"system": "ehr"}},
            "fee": "monthly_fee",
            "tiers": [{"below": "99.9", "credit_rate": "0.05"}],
        },
        {
            "id": "sourced",
            "kind": "kpi_incentive",
            "kpi": "bcma_compliance",
            "direction": "higher_is_better",
            "baseline": "0.6",
            "target": {"input": "bcma_target"},
        },
    )
    assert kpi_targets(c) == [
        KpiTarget("cpoe", "cpoe_rate", "", "higher_is_better", Decimal("0.9")),
        KpiTarget("denials", "claim_denial_rate", "", "lower_is_better", Decimal("0.05")),
        KpiTarget("sla", "uptime_pct", "ehr", "higher_is_better", Decimal("99.9")),
    ]
