"""A cancelled admission takes its whole stay with it (docs/events.md): the stay's discharges that name
that admission (their `admitted_at` is its time) are cancelled too — no length of stay, no index stay,
no readmission. An admission of the encounter at another time is another stay's start (HL7 A11 then A01
again): its discharges still count.

A cancelled discharge still takes part in choosing its stay's standing discharge
(kpi_engine.domain.readmissions.standing_discharges): when it is the one received last, the stay has no
discharge. A cancelled admission simply stops counting.

Which cancel names which fact is kpi_engine.domain.cancellations'; this module only says which facts an
admission or a discharge stops counting for.
"""

from __future__ import annotations

from collections.abc import Iterable

from kpi_engine.domain.cancellations import ADMITTED, Fact, cancelled_by, fact_of
from vr_shared.events.catalogue import EncounterDischarged, Event


def stopping_facts(event: Event) -> list[Fact]:
    """The facts whose cancel stops this event counting: its own, and for a discharge its stay's
    admission (an empty list for any other event)."""
    own = fact_of(event)
    if own is None:
        return []
    if isinstance(event, EncounterDischarged):
        data = event.data
        return [own, (data.patient_ref, data.encounter_ref, ADMITTED, data.admitted_at)]
    return [own]


def cancelled_facts(events: Iterable[Event]) -> set[Fact]:
    """The facts the cancels among these events name."""
    return {fact for event in events if (fact := cancelled_by(event)) is not None}


def is_cancelled(event: Event, cancelled: set[Fact]) -> bool:
    """Whether a cancel stops this admission or discharge (its own, or its stay's admission's)."""
    return any(fact in cancelled for fact in stopping_facts(event))
