"""Query parameters of the KPI API, read in the tenant's calendar; every error names its parameter."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta

from kpi_engine.domain.calendar import TenantCalendar
from kpi_engine.domain.catalogue import KpiDefinition
from vr_shared.web import Problem

MAX_RANGE_DAYS = 3_700  # ten years and a bit: a contract's life; one values query or one reading
MAX_READINGS = 500  # readings in one request (the shared contract's own bound)
# The readings of one request together: as if each of the most readings spanned a year (settlement's
# longest period), so any statement's readings fit, and one request's work stays bounded.
MAX_READINGS_DAYS = MAX_READINGS * 366
# Days a query may name: the tenant calendar's arithmetic (a day's start in any zone, a maturation after
# an end, a rolling window before a day) stays well inside the dates Python and PostgreSQL can hold.
FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(2200, 1, 1)
_DAYS_ALLOWED = f"between {FIRST_DAY.isoformat()} and {LAST_DAY.isoformat()}"
_WINDOW = re.compile(r"^([1-9][0-9]{0,3})d$")
_WINDOW_ALLOWED = f"a number of days such as 30d (1d to {MAX_RANGE_DAYS}d, a values query's bound)"


def invalid(parameter: str, message: str) -> Problem:
    return invalid_at(f"$.query.{parameter}", message)


def invalid_at(path: str, message: str, title: str = "Invalid query parameter") -> Problem:
    """422 naming where the query went wrong (a parameter, or a field of a readings body)."""
    return Problem(
        422,
        title,
        message,
        type_="/problems/invalid-query",
        errors=[{"path": path, "message": message, "code": "invalid"}],
    )


def day_boundary(parameter: str, raw: str, calendar: TenantCalendar, *, end: bool) -> date:
    """A date, or a timestamp (tenant's zone when it has no offset), as a local day boundary.

    Cells are whole local days: a `to` timestamp inside a day includes that day.
    """
    try:
        day = _local_day(raw, calendar, end=end)
    except ValueError:
        raise invalid(
            parameter, f"{parameter} must be a date (2026-01-31) or an RFC 3339 timestamp"
        ) from None
    except OverflowError:  # an instant the tenant's zone moves outside the calendar
        day = None
    if day is None or not FIRST_DAY <= day <= LAST_DAY:
        raise invalid(parameter, f"{parameter} must be {_DAYS_ALLOWED}")
    return day


def _local_day(raw: str, calendar: TenantCalendar, *, end: bool) -> date:
    if len(raw) == 10:
        return date.fromisoformat(raw)
    instant = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=calendar.zone)
    local = instant.astimezone(calendar.zone)
    day = local.date()
    return day + timedelta(days=1) if end and local.time() != time(0) else day


def date_range(raw_from: str, raw_to: str, calendar: TenantCalendar) -> tuple[date, date]:
    first = day_boundary("from", raw_from, calendar, end=False)
    end = day_boundary("to", raw_to, calendar, end=True)
    if end <= first:
        raise invalid("to", "to must be after from (from is inclusive, to exclusive)")
    if (end - first).days > MAX_RANGE_DAYS:
        raise invalid("to", f"a query spans at most {MAX_RANGE_DAYS} days")
    return first, end


def reading_days(spans: list[tuple[date, date]]) -> None:
    """The bounds of a readings request: each reading ends after it starts and spans at most
    MAX_RANGE_DAYS (the values query's bound), and all together at most MAX_READINGS_DAYS."""
    total = 0
    for index, (start, end) in enumerate(spans):
        for name, day in (("from", start), ("to", end)):
            if not FIRST_DAY <= day <= LAST_DAY:
                raise invalid_reading(index, name, f"{name} must be {_DAYS_ALLOWED}")
        if end <= start:
            raise invalid_reading(index, "to", "to must be after from (from is inclusive, to exclusive)")
        if (end - start).days > MAX_RANGE_DAYS:
            raise invalid_reading(index, "to", f"a reading spans at most {MAX_RANGE_DAYS} days")
        total += (end - start).days
    if total > MAX_READINGS_DAYS:
        message = (
            f"the readings of one request span at most {MAX_READINGS_DAYS} days together ({total} asked)"
        )
        raise invalid_at("$.readings", message, title="Invalid reading")


def invalid_reading(index: int, field: str, message: str) -> Problem:
    return invalid_at(f"$.readings[{index}].{field}", message, title="Invalid reading")


def window_days(raw: str) -> int:
    """A rolling window spans at most what a values query may (MAX_RANGE_DAYS)."""
    match = _WINDOW.match(raw)
    if not match or int(match[1]) > MAX_RANGE_DAYS:
        raise invalid("window", f"window must be {_WINDOW_ALLOWED}")
    return int(match[1])


def dimension_value(kpi: KpiDefinition, raw: str | None) -> str | None:
    """`ehr` or `system:ehr` for a KPI whose dimension is `system` (a values or rolling query)."""
    try:
        return dimension_of(kpi, raw)
    except ValueError as refused:
        raise invalid("dimension", str(refused)) from None


def reading_dimension(index: int, kpi: KpiDefinition, raw: str | None) -> str | None:
    """A reading's dimension, refused exactly as a values query refuses it, naming the reading's field."""
    try:
        return dimension_of(kpi, raw)
    except ValueError as refused:
        raise invalid_reading(index, "dimension", str(refused)) from None


def dimension_of(kpi: KpiDefinition, raw: str | None) -> str | None:
    """The dimension value asked (None: none asked); ValueError says why it cannot be one. An empty
    value is never one: it is how no system is named (uptime's facilities without a system)."""
    if raw is None:
        return None
    if kpi.dimension is None:
        raise ValueError(f"{kpi.name} has no dimension")
    name, _, value = raw.rpartition(":")
    if name and name != kpi.dimension:
        raise ValueError(f"the dimension of {kpi.name} is {kpi.dimension}")
    if not value:
        raise ValueError("dimension needs a value, e.g. ehr")
    return value
