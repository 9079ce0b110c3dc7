"""Cancelled admissions and discharges (docs/events.md): a cancel names the fact it cancels by the
patient's encounter, the kind of fact and its time, so it works whichever arrives first; a fact of the
encounter at another time still counts. The engine records cancels beside the events and keeps a
cancelled fact out of every KPI, as it does a retracted event.
"""

from __future__ import annotations

from datetime import datetime

from vr_shared.events.catalogue import (
    EncounterAdmissionCancelled,
    EncounterAdmitted,
    EncounterDischargeCancelled,
    EncounterDischarged,
    Event,
)

ADMITTED, DISCHARGED = "encounter.admitted", "encounter.discharged"
Fact = tuple[str, str, str, datetime]  # patient, encounter, fact (the event type), its time


def cancelled_by(event: Event) -> Fact | None:
    """The fact a cancel event names (None for any other event)."""
    match event:
        case EncounterAdmissionCancelled():
            return (event.data.patient_ref, event.data.encounter_ref, ADMITTED, event.data.admitted_at)
        case EncounterDischargeCancelled():
            return (event.data.patient_ref, event.data.encounter_ref, DISCHARGED, event.data.discharged_at)
    return None


def fact_of(event: Event) -> Fact | None:
    """What an admission or a discharge is, as a cancel names it (None for any other event)."""
    match event:
        case EncounterAdmitted() | EncounterDischarged():
            return (event.data.patient_ref, event.data.encounter_ref, event.type, event.time)
    return None
