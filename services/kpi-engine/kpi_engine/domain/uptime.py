"""Uptime per system: unplanned outage minutes, overlapping outages merged, clipped to each local day
(docs/kpis.md). Scheduled minutes are the calendar's, and only those that have passed: an open bucket
counts up to now."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from kpi_engine.domain.calendar import TenantCalendar
from kpi_engine.domain.cells import Cell, CellKey

KPI = "uptime_pct"


@dataclass(frozen=True, slots=True, order=True)
class Outage:
    started_at: datetime
    ended_at: datetime


def merge(outages: Iterable[Outage]) -> list[Outage]:
    """Union of the intervals: overlapping or touching outages become one."""
    merged: list[Outage] = []
    for outage in sorted(Outage(o.started_at.astimezone(UTC), o.ended_at.astimezone(UTC)) for o in outages):
        if merged and outage.started_at <= merged[-1].ended_at:
            if outage.ended_at > merged[-1].ended_at:
                merged[-1] = Outage(merged[-1].started_at, outage.ended_at)
        else:
            merged.append(outage)
    return merged


def minutes(span: timedelta) -> Decimal:
    """Exact minutes of a span (microseconds included; no float on the way)."""
    microseconds = (span.days * 86_400 + span.seconds) * 1_000_000 + span.microseconds
    return Decimal(microseconds) / Decimal(60_000_000)


def outage_minutes_by_day(
    outages: Iterable[Outage], calendar: TenantCalendar
) -> dict[date, tuple[Decimal, int]]:
    """Per local day: merged unplanned outage minutes inside that day, and how many outages touch it."""
    by_day: dict[date, tuple[Decimal, int]] = {}
    for outage in merge(outages):
        day = calendar.local_date(outage.started_at)
        while True:
            start, end = calendar.day_bounds(day)
            clipped = min(outage.ended_at, end.astimezone(UTC)) - max(
                outage.started_at, start.astimezone(UTC)
            )
            if clipped > timedelta(0):
                down, count = by_day.get(day, (Decimal(0), 0))
                by_day[day] = (down + minutes(clipped), count + 1)
            if outage.ended_at <= end.astimezone(UTC):
                break
            day += timedelta(days=1)
    return by_day


def elapsed_minutes(start: datetime, end: datetime, now: datetime) -> Decimal:
    """Scheduled minutes of [start, end) that have passed by `now` (the calendar is the denominator, so
    minutes still to come are not scheduled yet). In UTC: a local day is 23, 24 or 25 hours, and two
    datetimes of one zone compare by their wall clocks, which repeat an hour when DST ends."""
    since, until = start.astimezone(UTC), min(end.astimezone(UTC), now.astimezone(UTC))
    return minutes(until - since) if until > since else Decimal(0)


def down_so_far(outages: Iterable[Outage], since: datetime, now: datetime) -> tuple[Decimal, int]:
    """Merged unplanned minutes inside [since, now), and how many outages they come from: the part of
    the current local day that has happened (an outage reported to end later counts up to now)."""
    down, count = Decimal(0), 0
    for outage in merge(outages):  # merged in UTC
        clipped = min(outage.ended_at, now.astimezone(UTC)) - max(outage.started_at, since.astimezone(UTC))
        if clipped > timedelta(0):
            down, count = down + minutes(clipped), count + 1
    return down, count


def uptime_cells(
    facility: str, system: str, unplanned: Iterable[Outage], calendar: TenantCalendar
) -> dict[CellKey, Cell]:
    """Cells for the days an unplanned outage touched; every other day is fully available."""
    cells = {}
    for day, (down, count) in outage_minutes_by_day(unplanned, calendar).items():
        scheduled = calendar.day_minutes(day)
        cells[CellKey(KPI, facility, day, system)] = Cell(scheduled - down, scheduled, count)
    return cells
