"""Admission rules beyond the event schema: the caller's facilities and the clock."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from vr_shared.events import Event, FieldError
from vr_shared.identity import Identity
from vr_shared.roles import WRITERS

WRITER_ROLES = WRITERS


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """How much one request may carry: bytes, and events (NDJSON lines are counted before parsing)."""

    max_bytes: int
    max_events: int


@dataclass(frozen=True, slots=True)
class IntakePolicy:
    max_future_skew: timedelta

    def latest_allowed(self, now: datetime) -> datetime:
        return now + self.max_future_skew

    def errors_for(self, event: Event, caller: Identity, latest_allowed: datetime) -> Sequence[FieldError]:
        if event.facility in caller.facilities and event.time <= latest_allowed:
            return ()  # the common case, decided with one test per rule on the hot path
        errors = []
        if not caller.owns_facility(event.facility):
            errors.append(
                FieldError(
                    "$.facility",
                    f"facility {event.facility!r} is not a facility of tenant {caller.tenant!r}",
                    "facility_not_in_tenant",
                )
            )
        if event.time > latest_allowed:
            minutes = int(self.max_future_skew.total_seconds() // 60)
            errors.append(
                FieldError(
                    "$.time", f"event time is more than {minutes} minutes in the future", "time_in_future"
                )
            )
        return errors
