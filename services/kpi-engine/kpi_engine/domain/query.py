"""KPI values for any facility set, period, granularity or rolling window, from day cells (docs/kpis.md).

Ratios roll up by summing numerators and denominators, never by averaging rates. Cost is O(days in
the range), never O(events).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from kpi_engine.domain.calendar import Granularity, TenantCalendar, buckets
from kpi_engine.domain.catalogue import Aggregation, KpiDefinition
from kpi_engine.domain.cells import ZERO, Cell, CellKey


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
) -> PeriodValue:
    """The window of `window_days` local days ending with `at_day` (inclusive)."""
    start, end = rolling_window(window_days, at_day)
    return period_value(kpi, cells, facilities, start, end, dimension, calendar, now)


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
) -> PeriodValue:
    in_scope = {
        key: cell
        for key, cell in cells.items()
        if key.kpi == kpi.name
        and key.facility in facilities
        and start <= key.day < end
        and (dimension is None or key.dimension == dimension)
    }
    if kpi.name == "uptime_pct":
        in_scope = _with_fully_available_days(in_scope, facilities, start, end, dimension, calendar)
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
) -> PeriodValue:
    """Equal to `period_value` over the cells the sums were made from."""
    in_scope = [
        s for s in sums if s.facility in facilities and (dimension is None or s.dimension == dimension)
    ]
    total = Cell()
    for s in in_scope:
        total.add(Cell(s.numerator, s.denominator, s.sample_size))
    if kpi.name == "uptime_pct":
        total = _uptime_total(in_scope, facilities, start, end, dimension, calendar)
    status = _status(kpi, end, calendar, now)
    if kpi.aggregation is Aggregation.TOTAL:
        return _total_value(start, end, total, status)
    value = kpi.scale * total.numerator / total.denominator if total.denominator else None
    return PeriodValue(start, end, total.numerator, total.denominator, total.sample_size, value, status)


def _total_value(start: date, end: date, total: Cell, status: str) -> PeriodValue:
    """A total of no event is no data, not 0: a silent cost feed must never read as zero cost."""
    value = total.numerator if total.sample_size else None
    return PeriodValue(start, end, total.numerator, None, total.sample_size, value, status)


def _uptime_total(
    sums: Collection[FacilitySum],
    facilities: Collection[str],
    start: date,
    end: date,
    system: str | None,
    calendar: TenantCalendar,
) -> Cell:
    """Days without a cell are fully available: each facility/system pair counts every scheduled minute
    of the range, less the outage minutes its cells record (pairs as in `_with_fully_available_days`)."""
    scheduled = sum((calendar.day_minutes(day) for day, _ in buckets(start, end, Granularity.DAY)), ZERO)
    by_pair = {(s.facility, s.dimension): s for s in sums}
    pairs = {(f, system) for f in facilities} if system is not None else set(by_pair)
    total = Cell()
    for pair in pairs:
        found = by_pair.get(pair)
        if found is None:
            total.add(Cell(scheduled, scheduled, 0))
        else:
            total.add(Cell(found.numerator + scheduled - found.denominator, scheduled, found.sample_size))
    return total


def _with_fully_available_days(
    cells: dict[CellKey, Cell],
    facilities: Collection[str],
    start: date,
    end: date,
    system: str | None,
    calendar: TenantCalendar,
) -> dict[CellKey, Cell]:
    """Days without an unplanned outage are fully available: scheduled minutes count on both sides.

    With a system named, every requested facility counts; without one, the facility/system pairs that
    had an outage in the range.
    """
    pairs = (
        {(f, system) for f in facilities}
        if system is not None
        else {(k.facility, k.dimension) for k in cells}
    )
    filled = dict(cells)
    day = start
    while day < end:
        minutes = calendar.day_minutes(day)
        for facility, name in pairs:
            filled.setdefault(CellKey("uptime_pct", facility, day, name), Cell(minutes, minutes, 0))
        day += timedelta(days=1)
    return filled


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
    "facility_sums",
    "period_value",
    "period_value_from_sums",
    "rolling",
    "rolling_window",
]
