"""A cancelled admission takes its whole stay with it (docs/events.md): the stay's discharges that name
that admission (their `admitted_at` is its time) stop counting too — as a discharge, as an index stay
and as a readmission. An admission of the encounter at another time is another stay's start (HL7 A11
then A01 again): its discharges still count.

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


def without_cancelled_stays(events: Iterable[Event]) -> list[Event]:
    """The events less the admissions and discharges a cancel among them stops (their own cancel, or
    their stay's admission's)."""
    listed = list(events)
    cancelled = {fact for event in listed if (fact := cancelled_by(event)) is not None}
    return [event for event in listed if not any(fact in cancelled for fact in stopping_facts(event))]
