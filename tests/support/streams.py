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
    and a class at discharge that differs from the admitted one (observation → inpatient)."""
    rng = random.Random(seed)
    events: list[Event] = []
    classes = ("inpatient", "observation", "emergency")
    for n in range(stays):
        when = START + timedelta(minutes=rng.randrange(days * 24 * 60))
        facility, patient = rng.choice(FACILITIES), f"P{rng.randrange(patients)}"
        encounter = f"E{rng.randrange(3)}"  # few refs: the same ref for different patients and stays
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
