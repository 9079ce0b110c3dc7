"""Period ids, dates, months and status by the contract's calendar and run-out."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from settlement.domain.periods import PeriodError, parse_period, periods_until, status_at

START, END = date(2026, 2, 15), date(2027, 12, 31)


def test_period_ids_and_clipping_to_the_contract() -> None:
    q1 = parse_period("quarter", "2026-Q1", START, END)
    assert (q1.start, q1.end) == (date(2026, 2, 15), date(2026, 4, 1))  # the contract starts mid-quarter
    assert [m.id for m in q1.months()] == ["2026-02", "2026-03"]
    assert q1.months()[0].start == date(2026, 2, 15)
    assert parse_period("year", "2027", START, END).end == date(2028, 1, 1)
    assert parse_period("month", "2026-12", START, END).start == date(2026, 12, 1)


@pytest.mark.parametrize(
    ("kind", "period_id"),
    [("quarter", "2026-Q5"), ("quarter", "2026-03"), ("month", "2026-13"), ("year", "26"), ("year", "2025")],
)
def test_malformed_or_outside_periods_are_refused(kind: str, period_id: str) -> None:
    with pytest.raises(PeriodError):
        parse_period(kind, period_id, START, END)  # type: ignore[arg-type]


def test_status_follows_the_period_end_and_run_out_in_the_contracts_zone() -> None:
    q1 = parse_period("quarter", "2026-Q1", START, END)
    zone = "America/New_York"  # Q1 ends at 2026-04-01T04:00Z
    assert status_at(q1, 30, zone, datetime(2026, 4, 1, 3, 59, tzinfo=UTC)) == "open"
    assert status_at(q1, 30, zone, datetime(2026, 4, 1, 4, 0, tzinfo=UTC)) == "maturing"
    assert status_at(q1, 30, zone, datetime(2026, 5, 1, 3, 59, tzinfo=UTC)) == "maturing"
    assert status_at(q1, 30, zone, datetime(2026, 5, 1, 4, 0, tzinfo=UTC)) == "draft"


def test_periods_until_today_cover_the_contract_from_its_start() -> None:
    ids = [p.id for p in periods_until("quarter", START, END, date(2026, 11, 22))]
    assert ids == ["2026-Q1", "2026-Q2", "2026-Q3", "2026-Q4"]
