"""The demo's synthetic events are events the platform accepts: a rejected one would silently thin the
demo's KPIs (payments at the point of service by insurers were refused, 8 % of all payments)."""

from __future__ import annotations

from collections import Counter
from datetime import date

from vr_cli.demo_data import GO_LIVE, events
from vr_shared.events import EVENT_TYPES, validate_event


def test_a_quarter_of_demo_events_all_validate_with_unique_ids() -> None:
    stream = list(events(["mission-main", "mission-west"], GO_LIVE, date(2026, 6, 30)))
    for item in stream:
        validate_event(item)  # raises with the field path on the first invalid event
    assert len({(e["source"], e["id"]) for e in stream}) == len(stream)
    kinds = Counter(e["type"] for e in stream)
    assert kinds["payment.received"] > 1000 and kinds["system.outage"] > 0
    assert set(kinds) <= set(EVENT_TYPES)
