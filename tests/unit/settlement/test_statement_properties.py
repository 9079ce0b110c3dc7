"""Properties of statements: totals add up after contract caps; a better result never pays less."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from settlement.domain.sources import Values
from settlement.domain.statement import compute_line, statement
from tests.unit.settlement.builders import contract, line, q1, reading

Q1 = (date(2026, 1, 1), date(2026, 4, 1))
money = st.decimals(min_value=0, max_value=10_000_000, places=2, allow_nan=False, allow_infinity=False)
fraction = st.decimals(min_value=0, max_value=1, places=4, allow_nan=False, allow_infinity=False)


def _savings(benchmark: str = "benchmark") -> dict[str, Any]:
    return {
        "id": "savings",
        "kind": "shared_savings",
        "expenditure": {"input": "expenditure"},
        "benchmark": {"input": benchmark},
        "min_savings_rate": "0.02",
        "savings_rate": "0.60",
        "loss_rate": "0.40",
        "basis": "above_threshold",
        "savings_caps": [{"rate": "0.10", "of": "benchmark"}],
        "loss_caps": [{"rate": "0.05", "of": "benchmark"}],
    }


CORRIDOR = {
    "id": "corridor",
    "kind": "risk_corridor",
    "actual": {"input": "actual"},
    "target": {"input": "target"},
    "bands": [{"from": "0.02", "to": "0.05", "share": "0.5"}, {"from": "0.05", "share": "0.75"}],
}


@settings(max_examples=200, deadline=None)
@given(
    expenditure=money,
    actual=money,
    max_reward=st.one_of(st.none(), money),
    max_penalty=st.one_of(st.none(), money),
)
def test_total_is_the_sum_of_lines_after_contract_caps(
    expenditure: Decimal, actual: Decimal, max_reward: Decimal | None, max_penalty: Decimal | None
) -> None:
    caps = {
        k: format(v, "f")
        for k, v in (("max_reward", max_reward), ("max_penalty", max_penalty))
        if v is not None
    }
    c = contract(_savings(), CORRIDOR, caps=caps)
    inputs = {"benchmark": "5000000", "expenditure": expenditure, "actual": actual, "target": "5000000"}
    values = Values({k: Decimal(v) for k, v in inputs.items()}, {})
    lines = [compute_line(t, c, q1(c), values) for t in c.terms]
    now = datetime.now(UTC)
    result = statement(c, 1, q1(c), "draft", lines, data_cutoff=now, computed_at=now)
    total = Decimal(result["total"])
    assert total == sum(Decimal(line["amount"]) for line in result["lines"])
    terms_total = sum((line.amount for line in lines), Decimal(0))
    expected = terms_total
    if max_reward is not None:
        expected = min(expected, max_reward)
    if max_penalty is not None:
        expected = max(expected, -max_penalty)
    assert total == expected


@settings(max_examples=200, deadline=None)
@given(a=money, b=money)
def test_lower_expenditure_never_lowers_the_shared_savings_amount(a: Decimal, b: Decimal) -> None:
    low, high = sorted((a, b))
    amounts = [
        line(_savings(), {"benchmark": "5000000", "expenditure": format(e, "f")}).amount for e in (low, high)
    ]
    assert amounts[0] >= amounts[1]


@settings(max_examples=200, deadline=None)
@given(a=money, b=money)
def test_lower_actual_cost_never_lowers_the_corridor_amount(a: Decimal, b: Decimal) -> None:
    low, high = sorted((a, b))
    amounts = [line(CORRIDOR, {"actual": format(x, "f"), "target": "5000000"}).amount for x in (low, high)]
    assert amounts[0] >= amounts[1]


INCENTIVES = [
    {"curve": "linear", "baseline": "0.50", "target": "0.80", "floor": "0.30"},
    {
        "curve": "tiers",
        "max_penalty": "0",
        "tiers": [
            {"threshold": "0.40", "amount": "1000.00"},
            {"threshold": "0.60", "amount": "5000.00"},
            {"threshold": "0.75", "amount": "9000.00"},
        ],
    },
]


@settings(max_examples=200, deadline=None)
@given(a=fraction, b=fraction, shape=st.sampled_from(INCENTIVES), higher=st.booleans())
def test_a_better_kpi_never_lowers_the_reward(
    a: Decimal, b: Decimal, shape: dict[str, Any], higher: bool
) -> None:
    term = {
        "id": "kpi",
        "kind": "kpi_incentive",
        "kpi": "bcma_compliance",
        "direction": "higher_is_better",
        "max_reward": "10000.00",
        "max_penalty": "4000.00",
        **shape,
    }
    if not higher:  # mirror every threshold: x → 1 − x
        term["direction"] = "lower_is_better"
        for key in ("baseline", "target", "floor"):
            if key in term:
                term[key] = format(1 - Decimal(term[key]), "f")
        if "tiers" in term:
            term["tiers"] = [
                {**t, "threshold": format(1 - Decimal(t["threshold"]), "f")} for t in term["tiers"]
            ]
    worse, better = sorted((a, b)) if higher else sorted((a, b), reverse=True)
    amounts = [
        line(term, kpis={("bcma_compliance", *Q1): reading(format(v, "f"))}).amount for v in (worse, better)
    ]
    assert amounts[1] >= amounts[0]
