"""Contract periods: ids (`2026-03`, `2026-Q1`, `2026`), their dates, their months, and their status.

A period is a half-open range of local dates [start, end) clipped to the contract's own dates, so a
contract that starts mid-quarter settles its first quarter from its start.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

PeriodKind = Literal["month", "quarter", "year"]
Status = Literal["open", "maturing", "draft", "blocked", "final"]

_PATTERNS: dict[str, re.Pattern[str]] = {
    "month": re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$"),
    "quarter": re.compile(r"^(\d{4})-Q([1-4])$"),
    "year": re.compile(r"^(\d{4})$"),
}
_EXAMPLES = {"month": "2026-03", "quarter": "2026-Q1", "year": "2026"}


class PeriodError(ValueError):
    """A period id that is malformed for the contract's period kind, or outside the contract."""


@dataclass(frozen=True, slots=True, order=True)
class Period:
    start: date
    end: date  # exclusive
    id: str

    def months(self) -> list[Period]:
        """The calendar months of the period, each clipped to it (SLA credits are monthly)."""
        result = []
        first = self.start.replace(day=1)
        while first < self.end:
            following = _add_months(first, 1)
            result.append(Period(max(first, self.start), min(following, self.end), f"{first:%Y-%m}"))
            first = following
        return result


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _calendar_period(kind: PeriodKind, period_id: str) -> tuple[date, date]:
    match = _PATTERNS[kind].match(period_id)
    if not match:
        raise PeriodError(f"period {period_id!r} is not a {kind} id like {_EXAMPLES[kind]!r}")
    year = int(match.group(1))
    if kind == "year":
        return date(year, 1, 1), date(year + 1, 1, 1)
    if kind == "quarter":
        first = date(year, 3 * (int(match.group(2)) - 1) + 1, 1)
        return first, _add_months(first, 3)
    first = date(year, int(match.group(2)), 1)
    return first, _add_months(first, 1)


def parse_period(kind: PeriodKind, period_id: str, contract_start: date, contract_end: date) -> Period:
    """`contract_end` is the contract's last day (inclusive, as written in the document)."""
    start, end = _calendar_period(kind, period_id)
    start, end = max(start, contract_start), min(end, contract_end + timedelta(days=1))
    if start >= end:
        raise PeriodError(
            f"period {period_id!r} is outside the contract ({contract_start} to {contract_end})"
        )
    return Period(start, end, period_id)


def periods_until(kind: PeriodKind, contract_start: date, contract_end: date, today: date) -> list[Period]:
    """Every period of the contract that has started by `today`, oldest first."""
    result = []
    cursor = contract_start
    while cursor <= min(contract_end, today):
        period = parse_period(kind, period_id_of(kind, cursor), contract_start, contract_end)
        result.append(period)
        cursor = period.end
    return result


def period_id_of(kind: PeriodKind, day: date) -> str:
    if kind == "year":
        return f"{day.year}"
    if kind == "quarter":
        return f"{day.year}-Q{(day.month - 1) // 3 + 1}"
    return f"{day:%Y-%m}"


def local_midnight(day: date, zone: str) -> datetime:
    return datetime.combine(day, time(0), ZoneInfo(zone))


def status_at(period: Period, runout_days: int, zone: str, now: datetime) -> Status:
    """`open` until the period ends, `maturing` during the run-out, then `draft` (until finalized)."""
    if now < local_midnight(period.end, zone):
        return "open"
    if now < local_midnight(period.end + timedelta(days=runout_days), zone):
        return "maturing"
    return "draft"


def runout_passed(period: Period, runout_days: int, zone: str, now: datetime) -> bool:
    return now >= local_midnight(period.end + timedelta(days=runout_days), zone)


def has_ended(period: Period, zone: str, now: datetime) -> bool:
    return now >= local_midnight(period.end, zone)
