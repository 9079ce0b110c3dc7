"""A year of synthetic but realistic hospital events for the demo: three facilities, a go-live date
after which the vendor's work shows (fewer readmissions and denials, more clean claims, lower cost)."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

GO_LIVE = date(2026, 4, 1)


def _at(day: date, rng: random.Random) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
        minutes=rng.randrange(8 * 60, 22 * 60)
    )


def _iso(instant: datetime) -> str:
    return instant.isoformat().replace("+00:00", "Z")


def events(facilities: list[str], first: date, last: date, seed: int = 7) -> Iterator[dict[str, Any]]:
    """Events in time order per day, for [first, last]."""
    made = _DemoEvents(facilities, seed)
    day = first
    while day <= last:
        after = day >= GO_LIVE
        for facility in facilities:
            yield from made.stays(day, facility, after)
            yield from made.operations(day, facility, after)
            yield from made.finance(day, facility, after)
        day += timedelta(days=1)


class _DemoEvents:
    def __init__(self, facilities: list[str], seed: int) -> None:
        self.facilities = facilities
        self.rng = random.Random(seed)
        self.counter = 0
        self.pending_readmissions: list[tuple[date, str, str]] = []  # (day, patient, facility)

    def event(
        self, type_: str, when: datetime, facility: str, data: dict[str, Any], source: str
    ) -> dict[str, Any]:
        self.counter += 1
        return {
            "id": f"demo-{self.counter:08d}",
            "source": source,
            "type": type_,
            "time": _iso(when),
            "facility": facility,
            "data": data,
        }

    def stays(self, day: date, facility: str, after: bool) -> Iterator[dict[str, Any]]:
        """Stays: admissions today, discharges after a log-normal stay, readmissions that come back."""
        # Stays: admissions today, discharged after a log-normal length of stay (≈ 4.3 days).
        admissions = [(f"P{self.rng.randrange(40_000):05d}", False) for _ in range(self.rng.randrange(4, 9))]
        admissions += [(p, True) for d, p, f in self.pending_readmissions if d == day and f == facility]
        for patient, readmission in admissions:
            admitted = _at(day, self.rng)
            encounter = f"E{self.counter:08d}"
            cls = "inpatient" if readmission or self.rng.random() < 0.88 else "observation"
            yield self.event(
                "encounter.admitted",
                admitted,
                facility,
                {
                    "encounter_ref": encounter,
                    "patient_ref": patient,
                    "encounter_class": cls,
                    "planned": self.rng.random() < 0.08,
                },
                "epic-adt",
            )
            stay = timedelta(hours=max(6.0, self.rng.lognormvariate(math.log(80), 0.6)))
            discharged = admitted + stay
            disposition = self.rng.choices(
                ["home", "snf", "expired", "transfer_acute", "ama"], [80, 12, 2, 4, 2]
            )[0]
            yield self.event(
                "encounter.discharged",
                discharged,
                facility,
                {
                    "encounter_ref": encounter,
                    "patient_ref": patient,
                    "encounter_class": cls,
                    "admitted_at": _iso(admitted),
                    "disposition": disposition,
                },
                "epic-adt",
            )
            if cls == "inpatient" and self.rng.random() < (0.10 if after else 0.16):
                back = discharged.date() + timedelta(days=self.rng.randrange(2, 29))
                self.pending_readmissions.append((back, patient, self.rng.choice(self.facilities)))

    def operations(self, day: date, facility: str, after: bool) -> Iterator[dict[str, Any]]:
        """Medication orders and administrations, claims and their adjudication, payments."""
        # Medication, claims, payments, costs.
        for _ in range(self.rng.randrange(20, 30)):
            method = self.rng.choices(
                ["cpoe", "verbal", "phone", "paper", "protocol"], [88 if after else 74, 5, 4, 3, 4]
            )[0]
            yield self.event(
                "medication.ordered",
                _at(day, self.rng),
                facility,
                {
                    "order_ref": f"O{self.counter}",
                    "encounter_ref": f"E{self.counter}",
                    "entry_method": method,
                },
                "pharmacy",
            )
        for _ in range(self.rng.randrange(20, 30)):
            scanned = self.rng.random() < (0.95 if after else 0.88)
            yield self.event(
                "medication.administered",
                _at(day, self.rng),
                facility,
                {
                    "administration_ref": f"A{self.counter}",
                    "encounter_ref": f"E{self.counter}",
                    "patient_scanned": scanned,
                    "medication_scanned": scanned or self.rng.random() < 0.5,
                },
                "bcma",
            )
        for _ in range(self.rng.randrange(25, 35)):
            claim, amount = f"C{self.counter}", self.rng.randrange(300, 9000)
            yield self.event(
                "claim.submitted",
                _at(day, self.rng),
                facility,
                {
                    "claim_ref": claim,
                    "amount": f"{amount}.00",
                    "clean": self.rng.random() < (0.91 if after else 0.83),
                },
                "billing",
            )
            denied = self.rng.random() < (0.07 if after else 0.12)
            paid = 0 if denied else amount
            yield self.event(
                "claim.adjudicated",
                _at(day, self.rng),
                facility,
                {
                    "claim_ref": claim,
                    "outcome": "denied" if denied else "paid",
                    "initial": True,
                    "paid_amount": f"{paid}.00",
                    "denied_amount": f"{amount - paid}.00",
                },
                "billing",
            )
        for _ in range(self.rng.randrange(10, 16)):
            paid_at, payment = _at(day, self.rng), f"{self.rng.randrange(50, 4000)}.00"
            by_patient, at_the_desk = self.rng.random() < 0.4, self.rng.random() < 0.5
            yield self.event(
                "payment.received",
                paid_at,
                facility,
                # Only a patient pays at the point of service (the catalogue refuses anything else).
                {
                    "amount": payment,
                    "patient_payment": by_patient,
                    "point_of_service": by_patient and at_the_desk,
                },
                "billing",
            )

    def finance(self, day: date, facility: str, after: bool) -> Iterator[dict[str, Any]]:
        """Costs, the A/R snapshot, now and then an EHR outage."""
        care = 190_000 * (0.95 if after else 1.0) * self.rng.uniform(0.9, 1.1)
        yield self.event(
            "cost.incurred",
            _at(day, self.rng),
            facility,
            {"category": "total_cost_of_care", "amount": f"{care:.2f}"},
            "finance",
        )
        yield self.event(
            "cost.incurred",
            _at(day, self.rng),
            facility,
            {"category": "revenue_cycle", "amount": f"{self.rng.uniform(3000, 5000):.2f}"},
            "finance",
        )
        yield self.event(
            "ar.snapshot",
            _at(day, self.rng),
            facility,
            {
                "net_ar": f"{self.rng.uniform(9e6, 1.1e7):.2f}",
                "avg_daily_net_revenue": f"{self.rng.uniform(2.2e5, 2.6e5):.2f}",
            },
            "finance",
        )
        if self.rng.random() < (0.04 if after else 0.08):  # an EHR outage
            start = _at(day, self.rng)
            end = start + timedelta(minutes=self.rng.randrange(5, 240))
            yield self.event(
                "system.outage",
                end,
                facility,
                {
                    "system": "ehr",
                    "started_at": _iso(start),
                    "ended_at": _iso(end),
                    "planned": self.rng.random() < 0.2,
                },
                "monitoring",
            )


def baseline_cost_per_day(facilities: list[str]) -> float:
    """What care costs per day before go-live (the benchmark the shared-savings term is set against)."""
    return 190_000 * len(facilities)


def feed_closes(
    facilities: list[str], feeds: list[str], through: datetime, declared_at: datetime
) -> list[dict[str, Any]]:
    """The interface engine's end-of-day close: every feed of every facility complete through
    `through`, so KPI values and statements up to then are complete (docs/completeness.md)."""
    return [
        {
            "id": f"close-{facility}-{feed}-{through:%Y%m%d}",
            "source": "interface-engine",
            "type": "feed.complete",
            "time": declared_at.isoformat(),
            "facility": facility,
            "data": {"feed": feed, "through": through.isoformat()},
        }
        for facility in facilities
        for feed in feeds
    ]
