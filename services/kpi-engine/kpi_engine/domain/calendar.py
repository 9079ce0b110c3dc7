"""A tenant's calendar: local days in its IANA time zone, DST-correct, and the buckets built from them.

Every KPI cell is a local day. Weeks (ISO, Monday first), months, quarters and years are unions of days,
so any period is answered from day cells. Lengths are measured in UTC: a local day is 23, 24 or 25 hours.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from zoneinfo import ZoneInfo


class Granularity(Enum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


@dataclass(frozen=True, slots=True)
class TenantCalendar:
    zone: ZoneInfo

    @classmethod
    def of(cls, zone_name: str) -> TenantCalendar:
        return cls(ZoneInfo(zone_name))

    def local_date(self, instant: datetime) -> date:
        return instant.astimezone(self.zone).date()

    def day_start(self, day: date) -> datetime:
        """The first instant of the local day (midnight; the zone's rules decide the offset)."""
        return datetime.combine(day, time(0), self.zone)

    def day_bounds(self, day: date) -> tuple[datetime, datetime]:
        return self.day_start(day), self.day_start(day + timedelta(days=1))

    def day_minutes(self, day: date) -> Decimal:
        return _day_minutes(self.zone, day)


@functools.lru_cache(maxsize=65_536)
def _day_minutes(zone: ZoneInfo, day: date) -> Decimal:
    """Minutes of a local day (1380, 1440 or 1500): asked for every day of every uptime range, and a
    day's length never changes, so it is computed once."""
    start = datetime.combine(day, time(0), zone)
    end = datetime.combine(day + timedelta(days=1), time(0), zone)
    seconds = (end.astimezone(UTC) - start.astimezone(UTC)).total_seconds()  # not wall-clock
    return Decimal(int(seconds)) / 60


def bucket_start(day: date, granularity: Granularity) -> date:
    if granularity is Granularity.DAY:
        return day
    if granularity is Granularity.WEEK:
        return day - timedelta(days=day.weekday())
    if granularity is Granularity.MONTH:
        return day.replace(day=1)
    if granularity is Granularity.QUARTER:
        return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    return date(day.year, 1, 1)


def next_bucket_start(start: date, granularity: Granularity) -> date:
    if granularity is Granularity.DAY:
        return start + timedelta(days=1)
    if granularity is Granularity.WEEK:
        return start + timedelta(days=7)
    months = {Granularity.MONTH: 1, Granularity.QUARTER: 3, Granularity.YEAR: 12}[granularity]
    month_index = start.year * 12 + start.month - 1 + months
    return date(month_index // 12, month_index % 12 + 1, 1)


def buckets(first_day: date, end_day: date, granularity: Granularity) -> list[tuple[date, date]]:
    """Buckets [start, end) covering [first_day, end_day), the first and last clipped to the range."""
    result = []
    start = first_day
    while start < end_day:
        end = min(next_bucket_start(bucket_start(start, granularity), granularity), end_day)
        result.append((start, end))
        start = end
    return result
