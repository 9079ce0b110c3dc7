"""Money is never computed from data that is not there (docs/settlement.md, docs/contracts.md): missing
KPI data, incomplete feeds, inputs checked by use, contract rules whoever writes, penalty tiers."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from settlement.domain.contract import ContractInvalid
from settlement.domain.inputs import input_errors
from settlement.domain.sources import KpiReading, MissingFeed
from settlement.domain.statement import statement, what_is_missing
from tests.unit.settlement.builders import contract, line, q1, reading
from tests.unit.settlement.test_contract_validation import SAVINGS
from tests.unit.settlement.test_kpi_incentive import Q1, incentive

COST = {"kpi": "cost_total", "dimension": {"category": "total_cost_of_care"}}
JAN, FEB, MAR, APR = date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1), date(2026, 4, 1)
UPTIME = {
    "id": "uptime",
    "kind": "sla_credit",
    "kpi": {"kpi": "uptime_pct", "dimension": {"system": "ehr"}},
    "fee": "monthly_fee",
    "tiers": [{"below": "99.9", "credit_rate": "0.10"}],
}


def incomplete(value: str | None) -> KpiReading:
    gap = MissingFeed("asheville-main", "cost", "2026-03-01T05:00:00+00:00")
    return KpiReading(
        None if value is None else Decimal(value), Decimal(value or 0), None, 2, "mature", (gap,)
    )


def test_a_total_with_no_data_pays_nothing_and_says_why() -> None:
    # Expenditure read as 0 would have paid savings on the whole benchmark.
    term = {**SAVINGS, "expenditure": COST}
    paid = line(
        term,
        inputs={"benchmark": "10000000"},
        kpis={("cost_total:category=total_cost_of_care", *Q1): reading(None)},
    )
    assert (paid.amount, paid.reason, paid.complete) == (Decimal("0.00"), "no_kpi_data", False)


def test_a_reading_with_a_missing_feed_makes_the_line_incomplete_and_shows_the_gap() -> None:
    term = {**SAVINGS, "expenditure": COST}
    kpis = {("cost_total:category=total_cost_of_care", *Q1): incomplete("7000000")}
    paid = line(term, inputs={"benchmark": "10000000"}, kpis=kpis)
    # It is computed (an accrual estimate of 1,500,000.00 on two months) but it is not complete.
    assert (paid.amount, paid.complete) == (Decimal("1500000.00"), False)
    used = paid.inputs["expenditure"]
    assert used["complete"] is False
    assert used["missing"] == [
        {"facility": "asheville-main", "feed": "cost", "complete_through": "2026-03-01T05:00:00+00:00"}
    ]


def test_an_sla_month_without_a_value_is_no_kpi_data_not_a_month_of_full_service() -> None:
    kpis = {
        ("uptime_pct:system=ehr", JAN, FEB): reading("99.0"),
        ("uptime_pct:system=ehr", FEB, MAR): reading(None),
        ("uptime_pct:system=ehr", MAR, APR): reading("100"),
    }
    paid = line(UPTIME, kpis=kpis)
    assert (paid.amount, paid.reason) == (Decimal("0.00"), "no_kpi_data")
    assert "2026-02" in (paid.detail or "")


def test_a_statement_past_its_runout_and_incomplete_is_blocked_and_lists_what_is_missing() -> None:
    c = contract({**SAVINGS, "expenditure": COST})
    kpis = {("cost_total:category=total_cost_of_care", *Q1): incomplete("7000000")}
    lines = [line({**SAVINGS, "expenditure": COST}, inputs={"benchmark": "10000000"}, kpis=kpis)]
    now = datetime(2026, 9, 1, tzinfo=UTC)
    blocked = statement(c, 1, q1(c), "draft", lines, data_cutoff=now, computed_at=now)
    assert (blocked["status"], blocked["data_complete"]) == ("blocked", False)
    maturing = statement(c, 1, q1(c), "maturing", lines, data_cutoff=now, computed_at=now)
    assert maturing["status"] == "maturing"  # within the run-out: still expected to fill in
    missing = what_is_missing(blocked)
    assert [(m["term_id"], m["kpi"], m["feed"]) for m in missing["missing_feeds"]] == [
        ("savings", "cost_total", "cost")
    ]
    no_input = line(SAVINGS, inputs={"benchmark": "10000000"})
    missing = what_is_missing(statement(c, 1, q1(c), "draft", [no_input], data_cutoff=now, computed_at=now))
    assert (
        missing["missing_inputs"][0]["term_id"] == "savings"
        and "expenditure" in missing["missing_inputs"][0]["detail"]
    )


@pytest.mark.parametrize(
    ("term", "inputs", "refused"),
    [
        (
            {**SAVINGS, "quality_score": {"input": "quality"}},
            {"quality": "89.34"},
            ("$.quality", "$.terms[0].quality_score"),
        ),
        (SAVINGS, {"benchmark": "0"}, ("$.benchmark", "$.terms[0].benchmark")),
        (SAVINGS, {"expenditure": "-5"}, ("$.expenditure", "$.terms[0].expenditure")),
        (
            {**SAVINGS, "min_savings_rate": {"mssp_one_sided_scale": {"input": "population"}}},
            {"population": "5000.5"},
            ("$.population", "$.terms[0].min_savings_rate.mssp_one_sided_scale"),
        ),
        (
            {**SAVINGS, "savings_rate": {"input": "share"}},
            {"share": "1.5"},
            ("$.share", "$.terms[0].savings_rate"),
        ),
        (incentive(max_reward={"input": "reward"}), {"reward": "-1"}, ("$.reward", "$.terms[0].max_reward")),
    ],
)
def test_inputs_are_checked_against_every_parameter_that_uses_them(
    term: dict[str, object], inputs: dict[str, str], refused: tuple[str, str]
) -> None:
    errors = input_errors(contract(term), {k: Decimal(v) for k, v in inputs.items()})
    assert [(e.path, refused[1] in e.message) for e in errors] == [(refused[0], True)]


def test_inputs_within_their_rules_and_inputs_no_term_reads_pass() -> None:
    term = {**SAVINGS, "quality_score": {"input": "quality"}}
    values = {"quality": Decimal("0.8934"), "benchmark": Decimal("1"), "notes": Decimal("-3")}
    assert input_errors(contract(term), values) == []


def test_min_denominator_only_on_a_kpi_that_has_one() -> None:
    for kpi in ({"kpi": "cost_total"}, {"input": "kpi_value"}):
        with pytest.raises(ContractInvalid) as refused:
            contract(incentive(kpi=kpi, min_denominator="10"))
        assert [e.path for e in refused.value.errors] == ["$.terms[0].min_denominator"]
    contract(incentive(min_denominator="10"))  # cpoe_rate has a denominator


def test_penalty_tiers_pay_negative_amounts_and_a_worse_kpi_never_pays_more() -> None:
    term = incentive(
        curve="tiers",
        baseline=None,
        target=None,
        floor=None,
        max_penalty="0",
        tiers=[
            {"threshold": "0.70", "amount": "-20000"},
            {"threshold": "0.80", "amount": "0"},
            {"threshold": "0.90", "amount": "30000"},
        ],
    )
    amounts = [
        line(term, kpis={("cpoe_rate", *Q1): reading(v, "0", "1000")}).amount
        for v in ("0.50", "0.70", "0.75", "0.80", "0.95")
    ]
    assert amounts == [Decimal(a) for a in ("-20000.00", "-20000.00", "-20000.00", "0.00", "30000.00")]
    assert amounts == sorted(amounts)
