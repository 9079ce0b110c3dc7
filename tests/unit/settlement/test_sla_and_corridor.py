"""sla_credit month by month, and risk_corridor band by band — the examples of tests/data/golden/README.md."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from tests.unit.settlement.builders import line, reading, step

SLA = {
    "id": "ehr-sla",
    "kind": "sla_credit",
    "kpi": {"kpi": "uptime_pct", "dimension": {"system": "ehr"}},
    "fee": "monthly_fee",
    "tiers": [
        {"below": "99.99", "credit_rate": "0.05"},
        {"below": "98.50", "credit_rate": "0.10"},
        {"below": "97.00", "credit_rate": "0.20"},
    ],
}
MONTHS = [
    (date(2026, 1, 1), date(2026, 2, 1)),
    (date(2026, 2, 1), date(2026, 3, 1)),
    (date(2026, 3, 1), date(2026, 4, 1)),
]


def sla_line(*values: str) -> Any:
    kpis = {("uptime_pct:system=ehr", *month): reading(v) for month, v in zip(MONTHS, values, strict=True)}
    return line(SLA, kpis=kpis)


def test_golden_sla_example_credits_each_month_by_its_lowest_tier() -> None:
    result = sla_line("99.995", "98.0", "96.5")
    assert [step(result, f"2026-0{m}.credit") for m in (1, 2, 3)] == [
        Decimal("0"),
        Decimal("1000.0000"),
        Decimal("2000.0000"),
    ]
    assert result.amount == Decimal("-3000.00")


def test_a_value_exactly_at_a_tier_boundary_is_not_below_it() -> None:
    result = sla_line("99.99", "98.50", "97.00")
    assert [step(result, f"2026-0{m}.credit_rate") for m in (1, 2, 3)] == [
        Decimal("0"),
        Decimal("0.05"),
        Decimal("0.10"),
    ]


def corridor(actual: str, target: str = "100000000") -> Any:
    term = {
        "id": "corridor",
        "kind": "risk_corridor",
        "actual": {"input": "actual"},
        "target": {"input": "target"},
        "bands": [{"from": "0.03", "to": "0.08", "share": "0.50"}, {"from": "0.08", "share": "0.80"}],
    }
    return line(term, {"actual": actual, "target": target})


def test_golden_corridor_beyond_the_first_band_is_marginal() -> None:
    assert corridor("110000000").amount == Decimal("-4100000.00")


def test_savings_inside_the_corridor_are_owed_to_the_vendor() -> None:
    assert corridor("94000000").amount == Decimal("1500000.00")


def test_deviation_inside_the_first_band_start_pays_nothing() -> None:
    result = corridor("103000000")
    assert (result.amount, result.reason) == (Decimal("0.00"), "within_corridor")
