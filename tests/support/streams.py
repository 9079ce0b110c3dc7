"""Reproducible, realistic event streams for the engine's fault tests and benchmarks."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from vr_shared.events import Event, validate_event
from vr_shared.events.catalogue import EventRetracted

FACILITIES = ("asheville-main", "mission-west")
START = datetime(2026, 1, 1, 5, tzinfo=UTC)  # local midnight in New York


def _iso(instant: datetime) -> str:
    return instant.isoformat()


def _event(type_: str, id_: str, time: datetime, facility: str, data: dict[str, Any]) -> Event:
    return validate_event(
        {"id": id_, "source": "stream", "type": type_, "time": _iso(time), "facility": facility, "data": data}
    )


def event_stream(
    seed: int,
    count: int,
    *,
    days: int = 120,
    patients: int = 400,
    facilities: tuple[str, ...] = FACILITIES,
    patient_prefix: str = "P",
    start: datetime = START,
) -> list[Event]:
    """`count` events (approximately) over `days` days at `facilities`: stays with readmissions,
    medication, claims, payments, costs, outages and A/R snapshots, a few retractions."""
    rng = random.Random(seed)
    events: list[Event] = []
    n = 0

    def next_id() -> str:
        nonlocal n
        n += 1
        return f"s{seed}-{n}"

    while len(events) < count:
        when = start + timedelta(minutes=rng.randrange(days * 24 * 60))
        facility = rng.choice(facilities)
        kind = rng.random()
        if kind < 0.25:
            patient, encounter = f"{patient_prefix}{rng.randrange(patients)}", next_id()
            stay = timedelta(hours=rng.randrange(2, 24 * 8))
            planned = rng.random() < 0.1
            cls = "inpatient" if rng.random() < 0.85 else "observation"
            events.append(
                _event(
                    "encounter.admitted",
                    next_id(),
                    when,
                    facility,
                    {
                        "encounter_ref": encounter,
                        "patient_ref": patient,
                        "encounter_class": cls,
                        "planned": planned,
                    },
                )
            )
            disposition = rng.choice(["home", "home", "home", "snf", "expired", "transfer_acute", "ama"])
            events.append(
                _event(
                    "encounter.discharged",
                    next_id(),
                    when + stay,
                    facility,
                    {
                        "encounter_ref": encounter,
                        "patient_ref": patient,
                        "encounter_class": cls,
                        "admitted_at": _iso(when),
                        "disposition": disposition,
                    },
                )
            )
        elif kind < 0.45:
            events.append(
                _event(
                    "claim.submitted",
                    next_id(),
                    when,
                    facility,
                    {
                        "claim_ref": next_id(),
                        "amount": f"{rng.randrange(100, 90000)}.{rng.randrange(100):02d}",
                        "clean": rng.random() < 0.8,
                    },
                )
            )
        elif kind < 0.55:
            denied = rng.random() < 0.1
            events.append(
                _event(
                    "claim.adjudicated",
                    next_id(),
                    when,
                    facility,
                    {
                        "claim_ref": next_id(),
                        "outcome": "denied" if denied else "paid",
                        "initial": rng.random() < 0.9,
                        "paid_amount": "0" if denied else "100.00",
                        "denied_amount": "100.00" if denied else "0",
                    },
                )
            )
        elif kind < 0.7:
            patient_payment = rng.random() < 0.5
            events.append(
                _event(
                    "payment.received",
                    next_id(),
                    when,
                    facility,
                    {
                        "amount": f"{rng.randrange(5, 5000)}.{rng.randrange(100):02d}",
                        "patient_payment": patient_payment,
                        "point_of_service": patient_payment and rng.random() < 0.4,
                    },
                )
            )
        elif kind < 0.8:
            events.append(
                _event(
                    "cost.incurred",
                    next_id(),
                    when,
                    facility,
                    {
                        "category": rng.choice(["revenue_cycle", "operating", "total_cost_of_care"]),
                        "amount": f"{rng.randrange(1, 20000)}.{rng.randrange(100):02d}",
                    },
                )
            )
        elif kind < 0.88:
            events.append(
                _event(
                    "medication.administered",
                    next_id(),
                    when,
                    facility,
                    {
                        "administration_ref": next_id(),
                        "encounter_ref": next_id(),
                        "patient_scanned": rng.random() < 0.95,
                        "medication_scanned": rng.random() < 0.93,
                    },
                )
            )
        elif kind < 0.93:
            events.append(
                _event(
                    "medication.ordered",
                    next_id(),
                    when,
                    facility,
                    {
                        "order_ref": next_id(),
                        "encounter_ref": next_id(),
                        "entry_method": rng.choice(["cpoe", "cpoe", "cpoe", "verbal", "phone", "protocol"]),
                    },
                )
            )
        elif kind < 0.96:
            length = timedelta(minutes=rng.randrange(1, 600))
            events.append(
                _event(
                    "system.outage",
                    next_id(),
                    when + length,
                    facility,
                    {
                        "system": rng.choice(["ehr", "pacs"]),
                        "started_at": _iso(when),
                        "ended_at": _iso(when + length),
                        "planned": rng.random() < 0.3,
                    },
                )
            )
        elif kind < 0.98:
            events.append(
                _event(
                    "ar.snapshot",
                    next_id(),
                    when,
                    facility,
                    {
                        "net_ar": f"{rng.randrange(10**6, 10**7)}.00",
                        "avg_daily_net_revenue": f"{rng.randrange(10**4, 10**5)}.00",
                    },
                )
            )
        elif events:
            target = rng.choice(events)
            if target.type != "event.retracted":
                events.append(
                    _event("event.retracted", next_id(), when, target.facility, {"retracted_id": target.id})
                )
    return events


def effective(events: list[Event]) -> list[Event]:
    """What should count: every event not retracted (retractions themselves carry no KPI effect)."""
    retracted = {e.data.retracted_id for e in events if isinstance(e, EventRetracted)}
    return [e for e in events if e.type != "event.retracted" and e.id not in retracted]


def messy_stays(seed: int, stays: int, *, patients: int = 4, days: int = 50) -> list[Event]:
    """Stays as real ADT feeds describe them: encounter refs that collide across patients and
    facilities (each facility numbers its own encounters), a class changed by a later admission message,
    and a class at discharge that differs from the admitted one (observation → inpatient). A patient's
    own stays have refs of their own: one patient's encounter is one stay, with one standing discharge."""
    rng = random.Random(seed)
    events: list[Event] = []
    classes = ("inpatient", "observation", "emergency")
    stays_of: dict[str, int] = {}
    for n in range(stays):
        when = START + timedelta(minutes=rng.randrange(days * 24 * 60))
        facility, patient = rng.choice(FACILITIES), f"P{rng.randrange(patients)}"
        stays_of[patient] = stays_of.get(patient, -1) + 1
        encounter = f"E{stays_of[patient]}"  # the same refs for different patients
        admitted_class = rng.choice(classes)
        data = {"encounter_ref": encounter, "patient_ref": patient, "planned": rng.random() < 0.1}
        events.append(
            _event(
                "encounter.admitted",
                f"m{seed}-{n}-a",
                when,
                facility,
                {**data, "encounter_class": admitted_class},
            )
        )
        if rng.random() < 0.4:  # a later message changes the open stay's class
            changed = when + timedelta(hours=rng.randrange(1, 12))
            events.append(
                _event(
                    "encounter.admitted",
                    f"m{seed}-{n}-c",
                    changed,
                    facility,
                    {**data, "encounter_class": rng.choice(classes)},
                )
            )
        if rng.random() < 0.85:
            events.append(
                _event(
                    "encounter.discharged",
                    f"m{seed}-{n}-d",
                    when + timedelta(hours=rng.randrange(13, 24 * 6)),
                    facility,
                    {
                        "encounter_ref": encounter,
                        "patient_ref": patient,
                        "encounter_class": rng.choice(classes),  # the class at discharge governs
                        "admitted_at": _iso(when),
                        "disposition": rng.choice(["home", "home", "snf", "expired"]),
                    },
                )
            )
    return events


def corrected_stays(seed: int, stays: int, *, patients: int = 12, days: int = 40) -> list[list[Event]]:
    """Stays as feeds correct them, each stay's events as one list: a discharge re-sent with a corrected
    time (the event id carries the time: another event), a class changed at the same admission time
    (HL7 A06/A08 keep PV1-44), a stay entered in error after it finished (its admission cancelled, its
    discharge too or not). Patients are named as `event_stream`'s, so corrections meet its stays."""
    rng = random.Random(seed)
    groups: list[list[Event]] = []
    classes = ("inpatient", "observation")
    for n in range(stays):
        when = START + timedelta(minutes=rng.randrange(days * 24 * 60))
        facility, patient, encounter = rng.choice(FACILITIES), f"P{rng.randrange(patients)}", f"X{seed}-{n}"
        data = {"encounter_ref": encounter, "patient_ref": patient, "planned": False}
        stay = [
            _event(
                "encounter.admitted",
                f"c{seed}-{n}-a",
                when,
                facility,
                {**data, "encounter_class": "inpatient"},
            )
        ]
        if rng.random() < 0.3:  # the class changed, same admission time
            changed = {**data, "encounter_class": rng.choice(classes)}
            stay.append(_event("encounter.admitted", f"c{seed}-{n}-a2", when, facility, changed))
        discharged: list[datetime] = []
        for k in range(rng.choice((1, 2, 2, 3))):  # sent, then re-sent with corrected times
            end = when + timedelta(hours=rng.randrange(2, 24 * 8))
            discharged.append(end)
            stay.append(
                _event(
                    "encounter.discharged",
                    f"c{seed}-{n}-d{k}",
                    end,
                    facility,
                    {
                        "encounter_ref": encounter,
                        "patient_ref": patient,
                        "encounter_class": rng.choice(classes),
                        "admitted_at": _iso(when),
                        "disposition": rng.choice(["home", "home", "snf", "expired"]),
                    },
                )
            )
        if rng.random() < 0.25:  # entered in error: the admission cancelled, maybe the discharge too
            named = {"encounter_ref": encounter, "patient_ref": patient}
            cancelled_at = max(discharged) + timedelta(hours=1)
            stay.append(
                _event(
                    "encounter.admission_cancelled",
                    f"c{seed}-{n}-xa",
                    cancelled_at,
                    facility,
                    {**named, "admitted_at": _iso(when)},
                )
            )
            if rng.random() < 0.5:
                stay.append(
                    _event(
                        "encounter.discharge_cancelled",
                        f"c{seed}-{n}-xd",
                        cancelled_at,
                        facility,
                        {**named, "discharged_at": _iso(rng.choice(discharged))},
                    )
                )
        groups.append(stay)
    return groups
