from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ingest.domain.intake import IntakePolicy
from tests.support.examples import event
from vr_shared.events import validate_event
from vr_shared.identity import Identity

NOW = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)
CALLER = Identity(
    tenant="mission-health", role="pipeline", key_id="k", facilities=frozenset({"asheville-main"})
)
POLICY = IntakePolicy(max_future_skew=timedelta(minutes=5))


def _at(offset: timedelta, facility: str = "asheville-main") -> list[str]:
    e = validate_event(event("cost.incurred", facility=facility, time=(NOW + offset).isoformat()))
    return [error.code for error in POLICY.errors_for(e, CALLER, POLICY.latest_allowed(NOW))]


def test_event_exactly_five_minutes_ahead_is_accepted() -> None:
    assert _at(timedelta(minutes=5)) == []


def test_event_more_than_five_minutes_ahead_is_rejected() -> None:
    assert _at(timedelta(minutes=5, seconds=1)) == ["time_in_future"]


def test_back_dated_event_is_accepted() -> None:
    assert _at(timedelta(days=-400)) == []


def test_facility_of_another_tenant_is_rejected() -> None:
    assert _at(timedelta(0), facility="someone-elses-hospital") == ["facility_not_in_tenant"]
