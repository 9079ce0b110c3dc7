"""KPI values for any facility set, period, granularity or rolling window, from day cells (docs/kpis.md).

Ratios roll up by summing numerators and denominators, never by averaging rates. Cost is O(days in
the range), never O(events).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from kpi_engine.domain.calendar import TenantCalendar
from kpi_engine.domain.catalogue import Aggregation, KpiDefinition
from kpi_engine.domain.cells import ZERO, Cell, CellKey
from kpi_engine.domain.uptime import KPI as UPTIME
from kpi_engine.domain.uptime import Outage, down_so_far, elapsed_minutes


@dataclass(frozen=True, slots=True)
class PeriodValue:
    start: date
    end: date  # exclusive
    numerator: Decimal
    denominator: Decimal | None  # None for totals, which have no denominator
    sample_size: int
    value: Decimal | None  # None when nothing was measured: a denominator of 0, a total of no event
    status: str  # "provisional" until the KPI's maturation after the period's end has passed


def rolling(
    kpi: KpiDefinition,
    cells: Mapping[CellKey, Cell],
    facilities: Collection[str],
    window_days: int,
    at_day: date,
    dimension: str | None,
    calendar: TenantCalendar,
    now: datetime,
    uptime: UptimeFacts | None = None,
) -> PeriodValue:
    """The window of `window_days` local days ending with `at_day` (inclusive)."""
    start, end = rolling_window(window_days, at_day)
    return period_value(kpi, cells, facilities, start, end, dimension, calendar, now, uptime)


def rolling_window(window_days: int, at_day: date) -> tuple[date, date]:
    """[start, end) of the `window_days` local days ending with `at_day` (inclusive)."""
    end = at_day + timedelta(days=1)
    return end - timedelta(days=window_days), end


def period_value(
    kpi: KpiDefinition,
    cells: Mapping[CellKey, Cell],
    facilities: Collection[str],
    start: date,
    end: date,
    dimension: str | None,
    calendar: TenantCalendar,
    now: datetime,
    uptime: UptimeFacts | None = None,
) -> PeriodValue:
    """The reference, from day cells. Uptime's facts default to what the cells say: the systems of the
    uptime cells given, and no outage on now's local day."""
    first, stop = summed_days(kpi, start, end, calendar, now)
    in_scope = {
        key: cell
        for key, cell in cells.items()
        if key.kpi == kpi.name
        and key.facility in facilities
        and first <= key.day < stop
        and (dimension is None or key.dimension == dimension)
    }
    if kpi.name == UPTIME:
        facts = uptime if uptime is not None else UptimeFacts(systems_of(cells))
        in_scope = _uptime_days(in_scope, facilities, start, end, dimension, calendar, now, facts)
    if kpi.aggregation is Aggregation.LATEST_RATIO:
        in_scope = _latest_per_facility(in_scope)
    total = Cell()
    for cell in in_scope.values():
        total.add(cell)
    status = _status(kpi, end, calendar, now)
    if kpi.aggregation is Aggregation.TOTAL:
        return _total_value(start, end, total, status)
    value = kpi.scale * total.numerator / total.denominator if total.denominator else None
    return PeriodValue(start, end, total.numerator, total.denominator, total.sample_size, value, status)


Pair = tuple[str, str]  # (facility, system) of an uptime cell
ALL_SYSTEMS = ""  # a facility that has named no system: its systems as one (no cell carries it)


@dataclass(frozen=True, slots=True)
class UptimeFacts:
    """What uptime needs beside its day cells (docs/kpis.md, "Uptime").

    `systems`: the (facility, system) pairs the tenant has named. A system becomes known to a facility
    with its first standing unplanned outage there, whatever its date, and counts in every bucket of
    that facility's uptime read without a system, before that outage too. `today`: the unplanned
    outages touching now's local day, of which an open bucket counts only the minutes that have passed.
    """

    systems: frozenset[Pair] = frozenset()
    today: Mapping[Pair, Sequence[Outage]] = field(default_factory=dict)


def systems_of(cells: Iterable[CellKey]) -> frozenset[Pair]:
    """The pairs uptime cells name (an uptime cell exists for every day an unplanned outage touched)."""
    return frozenset((key.facility, key.dimension) for key in cells if key.kpi == UPTIME)


def summed_days(
    kpi: KpiDefinition, start: date, end: date, calendar: TenantCalendar, now: datetime
) -> tuple[date, date]:
    """The days [first, stop) whose cells a value over [start, end) sums. Uptime's denominator is the
    calendar, so it sums only the local days wholly past: now's own day is measured from its outages up
    to now, and later days have not happened. Every other KPI counts events: the whole range."""
    if kpi.name != UPTIME:
        return start, end
    return start, _past_days_end(start, end, calendar, now)


def _past_days_end(start: date, end: date, calendar: TenantCalendar, now: datetime) -> date:
    return max(start, min(end, calendar.local_date(now)))


@dataclass(frozen=True, slots=True)
class FacilitySum:
    """The cells of one facility and dimension value within one range, summed (for a latest-snapshot
    KPI: its latest cell). `days` counts the cells summed. The database computes these, so a period
    costs one row per facility, whatever its length."""

    facility: str
    dimension: str
    numerator: Decimal
    denominator: Decimal
    sample_size: int
    days: int


def facility_sums(
    kpi: KpiDefinition, cells: Mapping[CellKey, Cell], start: date, end: date, dimension: str | None
) -> list[FacilitySum]:
    """What the database's grouping returns, computed from cells (the reference for tests)."""
    groups: dict[tuple[str, str], list[tuple[date, Cell]]] = {}
    for key, cell in sorted(cells.items()):
        if (
            key.kpi == kpi.name
            and start <= key.day < end
            and (dimension is None or key.dimension == dimension)
        ):
            groups.setdefault((key.facility, key.dimension), []).append((key.day, cell))
    sums = []
    for (facility, name), days in sorted(groups.items()):
        if kpi.aggregation is Aggregation.LATEST_RATIO:
            days = [max(days, key=lambda item: item[0])]
        total = Cell()
        for _, cell in days:
            total.add(cell)
        sums.append(
            FacilitySum(facility, name, total.numerator, total.denominator, total.sample_size, len(days))
        )
    return sums


def period_value_from_sums(
    kpi: KpiDefinition,
    sums: Collection[FacilitySum],
    facilities: Collection[str],
    start: date,
    end: date,
    dimension: str | None,
    calendar: TenantCalendar,
    now: datetime,
    uptime: UptimeFacts | None = None,
) -> PeriodValue:
    """Equal to `period_value` over the cells the sums were made from: the cells of `summed_days`, and
    for uptime the same facts."""
    in_scope = [
        s for s in sums if s.facility in facilities and (dimension is None or s.dimension == dimension)
    ]
    total = Cell()
    for s in in_scope:
        total.add(Cell(s.numerator, s.denominator, s.sample_size))
    if kpi.name == UPTIME:
        facts = uptime if uptime is not None else UptimeFacts()
        total = _uptime_total(in_scope, facilities, start, end, dimension, calendar, now, facts)
    status = _status(kpi, end, calendar, now)
    if kpi.aggregation is Aggregation.TOTAL:
        return _total_value(start, end, total, status)
    value = kpi.scale * total.numerator / total.denominator if total.denominator else None
    return PeriodValue(start, end, total.numerator, total.denominator, total.sample_size, value, status)


def _total_value(start: date, end: date, total: Cell, status: str) -> PeriodValue:
    """A total of no event is no data, not 0: a silent cost feed must never read as zero cost."""
    value = total.numerator if total.sample_size else None
    return PeriodValue(start, end, total.numerator, None, total.sample_size, value, status)


def _uptime_pairs(
    facilities: Collection[str], system: str | None, facts: UptimeFacts, summed: Iterable[Pair]
) -> set[Pair]:
    """Who counts. A system named: every requested facility, outage or not (no outage reported means
    fully available). No system named: every pair known to the requested facilities, and a facility
    that has named no system yet counts as one system of its own (`ALL_SYSTEMS`) — its systems feed,
    declared complete, says nothing was down, so the value is 100, never a null that blocks a statement
    forever; `complete` says whether that 100 is backed by a declaration (docs/kpis.md, "Uptime")."""
    if system is not None:
        return {(facility, system) for facility in facilities}
    known = {pair for pair in (*facts.systems, *facts.today, *summed) if pair[0] in facilities}
    named = {facility for facility, _ in known}
    return known | {(facility, ALL_SYSTEMS) for facility in facilities if facility not in named}


def _uptime_total(
    sums: Collection[FacilitySum],
    facilities: Collection[str],
    start: date,
    end: date,
    system: str | None,
    calendar: TenantCalendar,
    now: datetime,
    facts: UptimeFacts,
) -> Cell:
    """Each pair counts the scheduled minutes of the range that have passed, less its outage minutes in
    them: the summed past days' cells (a day without one was fully available), then now's own day so far.
    O(pairs), whatever the length of the range."""
    by_pair = {(s.facility, s.dimension): s for s in sums}
    # The past days' scheduled minutes at once (the calendar's lengths, DST days included).
    past_end = calendar.day_start(_past_days_end(start, end, calendar, now))
    scheduled = elapsed_minutes(calendar.day_start(start), past_end, past_end)
    today = calendar.local_date(now)
    total = Cell()
    for pair in sorted(_uptime_pairs(facilities, system, facts, by_pair)):
        found = by_pair.get(pair)
        down, outages = (found.denominator - found.numerator, found.sample_size) if found else (ZERO, 0)
        total.add(Cell(scheduled - down, scheduled, outages))
        if start <= today < end:
            total.add(_today_so_far(pair, facts, today, calendar, now))
    return total


def _uptime_days(
    cells: dict[CellKey, Cell],
    facilities: Collection[str],
    start: date,
    end: date,
    system: str | None,
    calendar: TenantCalendar,
    now: datetime,
    facts: UptimeFacts,
) -> dict[CellKey, Cell]:
    """Day by day (the reference): a past day without a cell was fully available, now's own day counts
    its minutes so far, a later day nothing."""
    today = calendar.local_date(now)
    filled: dict[CellKey, Cell] = {}
    for facility, name in _uptime_pairs(
        facilities, system, facts, {(k.facility, k.dimension) for k in cells}
    ):
        day = start
        while day < min(end, today):
            key = CellKey(UPTIME, facility, day, name)
            minutes_of_day = calendar.day_minutes(day)
            filled[key] = cells.get(key, Cell(minutes_of_day, minutes_of_day, 0))
            day += timedelta(days=1)
        if start <= today < end:
            filled[CellKey(UPTIME, facility, today, name)] = _today_so_far(
                (facility, name), facts, today, calendar, now
            )
    return filled


def _today_so_far(
    pair: Pair, facts: UptimeFacts, today: date, calendar: TenantCalendar, now: datetime
) -> Cell:
    """Now's local day up to now: its passed minutes, less the outage minutes inside them."""
    since, until = calendar.day_bounds(today)
    scheduled = elapsed_minutes(since, until, now)
    down, outages = down_so_far(facts.today.get(pair, ()), since, now)
    return Cell(scheduled - down, scheduled, outages)


def _latest_per_facility(cells: dict[CellKey, Cell]) -> dict[CellKey, Cell]:
    latest: dict[str, CellKey] = {}
    for key in cells:
        if key.facility not in latest or key.day > latest[key.facility].day:
            latest[key.facility] = key
    return {key: cells[key] for key in latest.values()}


def _status(kpi: KpiDefinition, end: date, calendar: TenantCalendar, now: datetime) -> str:
    matured_at = calendar.day_start(end) + timedelta(days=kpi.maturation_days)
    return "mature" if now >= matured_at else "provisional"


__all__ = [
    "ZERO",
    "FacilitySum",
    "PeriodValue",
    "UptimeFacts",
    "facility_sums",
    "period_value",
    "period_value_from_sums",
    "rolling",
    "rolling_window",
    "summed_days",
    "systems_of",
]
