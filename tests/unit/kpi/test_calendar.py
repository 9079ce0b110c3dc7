from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from kpi_engine.domain.calendar import Granularity, TenantCalendar, buckets

NEW_YORK = TenantCalendar.of("America/New_York")


def test_local_days_are_24_hours_except_on_dst_changes() -> None:
    assert NEW_YORK.day_minutes(date(2026, 3, 7)) == Decimal(1440)
    assert NEW_YORK.day_minutes(date(2026, 3, 8)) == Decimal(1380)  # spring forward
    assert NEW_YORK.day_minutes(date(2026, 11, 1)) == Decimal(1500)  # fall back


def test_an_instant_belongs_to_the_tenants_local_date() -> None:
    assert NEW_YORK.local_date(datetime(2026, 1, 1, 4, 59, tzinfo=UTC)) == date(2025, 12, 31)
    assert NEW_YORK.local_date(datetime(2026, 1, 1, 5, 0, tzinfo=UTC)) == date(2026, 1, 1)
    assert NEW_YORK.local_date(datetime(2026, 7, 1, 3, 59, tzinfo=UTC)) == date(2026, 6, 30)  # EDT, UTC-4


def test_a_day_starts_at_local_midnight_in_either_offset() -> None:
    assert NEW_YORK.day_start(date(2026, 1, 15)).astimezone(UTC) == datetime(2026, 1, 15, 5, tzinfo=UTC)
    assert NEW_YORK.day_start(date(2026, 7, 15)).astimezone(UTC) == datetime(2026, 7, 15, 4, tzinfo=UTC)


def test_buckets_follow_the_calendar_and_are_clipped_to_the_range() -> None:
    assert buckets(date(2026, 2, 15), date(2026, 4, 10), Granularity.MONTH) == [
        (date(2026, 2, 15), date(2026, 3, 1)),
        (date(2026, 3, 1), date(2026, 4, 1)),
        (date(2026, 4, 1), date(2026, 4, 10)),
    ]
    assert buckets(date(2026, 1, 1), date(2027, 1, 1), Granularity.QUARTER)[1] == (
        date(2026, 4, 1),
        date(2026, 7, 1),
    )
    assert buckets(date(2026, 1, 1), date(2026, 1, 15), Granularity.WEEK) == [
        (date(2026, 1, 1), date(2026, 1, 5)),  # 2026-01-05 is a Monday
        (date(2026, 1, 5), date(2026, 1, 12)),
        (date(2026, 1, 12), date(2026, 1, 15)),
    ]
    assert buckets(date(2025, 12, 1), date(2027, 2, 1), Granularity.YEAR) == [
        (date(2025, 12, 1), date(2026, 1, 1)),
        (date(2026, 1, 1), date(2027, 1, 1)),
        (date(2027, 1, 1), date(2027, 2, 1)),
    ]
