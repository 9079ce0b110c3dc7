"""30-day readmissions: which discharges are index stays, and which admissions readmit them (docs/kpis.md).

A stay is a patient's encounter; it has at most one standing discharge, the one the engine received last
when that one is not cancelled (`standing_discharges`), and only that one counts. An index discharge is
an inpatient discharge whose disposition is not expired, transfer_acute or ama. It is readmitted when the
same patient (any facility of the tenant) has an unplanned inpatient admission after the discharge and at
most 30 local calendar days later. A readmission's own discharge can be an index stay in turn. The rate
is attributed to the index discharge's local date.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Protocol, TypeVar

from kpi_engine.domain.calendar import TenantCalendar
from kpi_engine.domain.cells import Cell, CellKey

K = TypeVar("K", bound=Hashable)


class Received(Protocol):
    """A discharge as the choice of a stay's standing one sees it: a Discharge, or its stored row."""

    @property
    def patient(self) -> str: ...
    @property
    def encounter(self) -> str: ...
    @property
    def received(self) -> int: ...
    @property
    def cancelled(self) -> bool: ...


D = TypeVar("D", bound=Received)
KPI = "readmission_rate_30d"
WINDOW_DAYS = 30
NOT_INDEX_DISPOSITIONS = frozenset({"expired", "transfer_acute", "ama"})


@dataclass(frozen=True, slots=True)
class Admission:
    encounter: str
    patient: str
    time: datetime
    encounter_class: str
    planned: bool
    received: int = 0  # the engine's record order (docs/kpis.md, "A stay is a patient's encounter")


@dataclass(frozen=True, slots=True)
class Discharge:
    encounter: str
    patient: str
    facility: str
    time: datetime
    encounter_class: str
    disposition: str
    admitted_at: datetime
    received: int = 0  # the engine's record order: of a stay's discharges, the last received governs
    # A cancel names it, or the admission it names (its `admitted_at`): it never stands, and while it is
    # the stay's last received, the stay has no discharge.
    cancelled: bool = False

    @property
    def is_index(self) -> bool:
        return self.encounter_class == "inpatient" and self.disposition not in NOT_INDEX_DISPOSITIONS

    def as_admission(self) -> Admission:
        """What a discharge tells about its stay's admission when no admission event was received."""
        return Admission(
            self.encounter, self.patient, self.admitted_at, self.encounter_class, False, self.received
        )


def standing_discharges(discharges: Mapping[K, D]) -> dict[K, D]:
    """The standing discharge of each stay (a patient's encounter), chosen among all its discharges,
    cancelled ones included: the one received last. A discharge re-sent with a corrected time (its event
    id carries the time: another event) replaces the one before. If the last received is cancelled (A13,
    or the admission it names cancelled), the stay has no discharge: the feed's latest word is "not
    discharged", and an older discharge never stands again. Only a retraction (an event withdrawn as
    sent in error: the caller no longer passes it) leaves the one received before it governing."""
    latest: dict[tuple[str, str], tuple[K, D]] = {}
    for key, discharge in discharges.items():
        stay = (discharge.patient, discharge.encounter)
        found = latest.get(stay)
        if found is None or discharge.received > found[1].received:
            latest[stay] = (key, discharge)
    return {key: discharge for key, discharge in latest.values() if not discharge.cancelled}


def readmits(index: Discharge, admission: Admission, calendar: TenantCalendar) -> bool:
    if admission.encounter == index.encounter or admission.patient != index.patient:
        return False
    if admission.encounter_class != "inpatient" or admission.planned or admission.time <= index.time:
        return False
    days_after = (calendar.local_date(admission.time) - calendar.local_date(index.time)).days
    return days_after <= WINDOW_DAYS


def known_admissions(admissions: Iterable[Admission], discharges: Iterable[Discharge]) -> list[Admission]:
    """One admission per stay, a stay being a patient's encounter (encounter refs of two patients may
    collide): of several admission events the latest by time governs (class changes, corrections), and
    of several at the same time the one received last (A06/A08 keep the admission time: the messages'
    own order decides, never the class's name); a discharged stay takes its class at its standing
    discharge (the `discharges` given), both as an index stay and as a readmission; a discharged stay
    whose admission event is missing is known by its discharge."""
    by_stay: dict[tuple[str, str], Admission] = {}
    for admission in sorted(admissions, key=_admission_order):
        by_stay[(admission.patient, admission.encounter)] = admission
    for discharge in sorted(discharges, key=_discharge_order):
        stay = (discharge.patient, discharge.encounter)
        found = by_stay.get(stay)
        by_stay[stay] = (
            discharge.as_admission()
            if found is None
            else replace(found, encounter_class=discharge.encounter_class)
        )
    return list(by_stay.values())


def _admission_order(admission: Admission) -> tuple[object, ...]:
    return (admission.time, admission.received)


def _discharge_order(discharge: Discharge) -> tuple[object, ...]:
    return (discharge.received, discharge.time)


@dataclass(frozen=True, slots=True)
class IndexOutcome:
    facility: str
    day: date
    readmitted: bool

    def cell(self) -> Cell:
        return Cell(Decimal(1) if self.readmitted else Decimal(0), Decimal(1), 1)


def index_outcomes(
    discharges: Mapping[K, Discharge], admissions: Iterable[Admission], calendar: TenantCalendar
) -> dict[K, IndexOutcome]:
    """For each standing index discharge (by the caller's key), where it counts and whether it was
    readmitted; a discharge a later one of its stay replaced has no outcome."""
    return standing_outcomes(standing_discharges(discharges), admissions, calendar)


def standing_outcomes(
    standing: Mapping[K, Discharge], admissions: Iterable[Admission], calendar: TenantCalendar
) -> dict[K, IndexOutcome]:
    """`index_outcomes` of discharges already chosen as their stays' standing ones (the engine's
    recomputation of a patient has them at hand)."""
    by_patient: dict[str, list[Admission]] = defaultdict(list)
    for admission in known_admissions(admissions, standing.values()):
        by_patient[admission.patient].append(admission)
    return {
        key: IndexOutcome(
            index.facility,
            calendar.local_date(index.time),
            any(readmits(index, a, calendar) for a in by_patient[index.patient]),
        )
        for key, index in standing.items()
        if index.is_index
    }


def readmission_cells(
    discharges: Iterable[Discharge], admissions: Iterable[Admission], calendar: TenantCalendar
) -> dict[CellKey, Cell]:
    cells: dict[CellKey, Cell] = {}
    for outcome in index_outcomes(dict(enumerate(discharges)), admissions, calendar).values():
        cells.setdefault(CellKey(KPI, outcome.facility, outcome.day), Cell()).add(outcome.cell())
    return cells
