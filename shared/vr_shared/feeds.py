"""Feeds: the kinds of data a hospital sends, and which event types belong to each
(docs/completeness.md).

A feed is complete for a facility through the latest `through` a pipeline declared with a
`feed.complete` event; KPI values and settlement statements are only trusted as far as the feeds behind
them are complete.
"""

from __future__ import annotations

from typing import Literal, get_args

Feed = Literal["adt", "medication", "safety", "quality", "systems", "claims", "payments", "ar", "cost"]
FEEDS: tuple[str, ...] = get_args(Feed)

EVENT_FEEDS: dict[str, str] = {
    "encounter.admitted": "adt",
    "encounter.discharged": "adt",
    "encounter.admission_cancelled": "adt",
    "encounter.discharge_cancelled": "adt",
    "medication.ordered": "medication",
    "medication.administered": "medication",
    "adverse_drug_event.recorded": "safety",
    "sepsis.case_evaluated": "quality",
    "system.outage": "systems",
    "claim.submitted": "claims",
    "claim.adjudicated": "claims",
    "payment.received": "payments",
    "ar.snapshot": "ar",
    "cost.incurred": "cost",
}
"""The feed of each measured event type (`event.retracted` and `feed.complete` belong to none)."""


def feed_of(event_type: str) -> str | None:
    return EVENT_FEEDS.get(event_type)
