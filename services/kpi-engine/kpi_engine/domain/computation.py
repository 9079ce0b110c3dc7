"""Every KPI cell computed from scratch from a tenant's effective events.

"Effective" means what the engine has resolved before: the first delivery of each (source, id), and no
event that has been retracted; no admission that a cancel names; discharges that a cancel names, or
whose stay's admission a cancel names, are taken as cancelled (kpi_engine.domain.stays): they count
nowhere, but the last received of a stay's discharges decides whether the stay has one. Events are taken
in the order the engine recorded them (or with that order given): of a stay's discharges, the one
recorded last governs, and admissions at the same time are ordered by it. This is the reference the
incremental engine must equal at all times, and the tool to rebuild cells after a change of rules.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from kpi_engine.domain.calendar import TenantCalendar
from kpi_engine.domain.cells import Cell, CellKey, CellTable
from kpi_engine.domain.contributions import contributions, stay_contributions
from kpi_engine.domain.readmissions import Admission, Discharge, readmission_cells, standing_discharges
from kpi_engine.domain.stays import cancelled_facts, is_cancelled
from kpi_engine.domain.uptime import Outage, uptime_cells
from vr_shared.events.catalogue import ArSnapshot, EncounterAdmitted, EncounterDischarged, Event, SystemOutage

DAYS_IN_AR = "days_in_ar"


@dataclass
class _Derived:
    """What only the whole set of events decides: outages, the latest A/R snapshot, stays."""

    outages: dict[tuple[str, str], list[Outage]] = field(default_factory=lambda: defaultdict(list))
    latest_snapshots: dict[tuple[str, date], ArSnapshot] = field(default_factory=dict)
    admissions: list[Admission] = field(default_factory=list)
    discharges: list[Discharge] = field(default_factory=list)

    def take(self, event: Event, calendar: TenantCalendar, received: int, cancelled: bool) -> None:
        match event:
            case SystemOutage() if not event.data.planned:
                self.outages[(event.facility, event.data.system)].append(
                    Outage(event.data.started_at, event.data.ended_at)
                )
            case ArSnapshot():
                slot = (event.facility, calendar.local_date(event.time))
                known = self.latest_snapshots.get(slot)
                if known is None or _snapshot_order(event) > _snapshot_order(known):
                    self.latest_snapshots[slot] = event
            case EncounterAdmitted():
                self.admissions.append(admission_of(event, received))
            case EncounterDischarged():
                self.discharges.append(discharge_of(event, received, cancelled=cancelled))


class CellComputation:
    """Cells from scratch, one event at a time: additive deltas are summed as events come, and only what
    the non-additive KPIs need is kept (outages, one A/R snapshot per day, stays) — a tenant's whole
    history streams through without being held. The events must be effective (see module docstring)."""

    def __init__(self, calendar: TenantCalendar) -> None:
        self._calendar = calendar
        self._table = CellTable()
        self._derived = _Derived()
        self.events = 0

    def take(self, event: Event, received: int | None = None, *, cancelled: bool = False) -> None:
        """Take the next event; `received`: its place in the engine's record order (default: the order
        of taking); `cancelled`: a discharge a cancel stops (it counts nowhere, but governs its stay
        while it is the last received)."""
        if not cancelled:
            for key, delta in contributions(event, self._calendar):
                self._table.apply(key, delta)
        self._derived.take(event, self._calendar, self.events if received is None else received, cancelled)
        self.events += 1

    def cells(self) -> dict[CellKey, Cell]:
        copied = {
            key: Cell(c.numerator, c.denominator, c.sample_size) for key, c in self._table.cells.items()
        }
        table, derived, calendar = CellTable(copied), self._derived, self._calendar
        for (facility, system), unplanned in derived.outages.items():
            for key, cell in uptime_cells(facility, system, unplanned, calendar).items():
                table.put(key, cell)
        for (facility, day), snapshot in derived.latest_snapshots.items():
            table.put(CellKey(DAYS_IN_AR, facility, day), days_in_ar_cell(snapshot))
        for discharge in standing_discharges(dict(enumerate(derived.discharges))).values():
            for key, delta in stay_contributions(discharge, calendar):
                table.apply(key, delta)
        for key, cell in readmission_cells(derived.discharges, derived.admissions, calendar).items():
            table.put(key, cell)
        return table.cells


def compute_cells(events: Iterable[Event], calendar: TenantCalendar) -> dict[CellKey, Cell]:
    """Every cell of these events, taken in their order; a cancel among them keeps the admission it
    names out, and cancels the discharge it names (or whose admission it names)."""
    listed = list(events)
    cancelled = cancelled_facts(listed)
    computation = CellComputation(calendar)
    for event in listed:
        if not is_cancelled(event, cancelled):
            computation.take(event)
        elif isinstance(event, EncounterDischarged):
            computation.take(event, cancelled=True)
    return computation.cells()


def _snapshot_order(snapshot: ArSnapshot) -> tuple[object, ...]:
    # Latest by event time; equal times are decided by source and id so arrival order never matters.
    return (snapshot.time, snapshot.source, snapshot.id)


def days_in_ar_cell(snapshot: ArSnapshot) -> Cell:
    return Cell(snapshot.data.net_ar, snapshot.data.avg_daily_net_revenue, 1)


def admission_of(event: EncounterAdmitted, received: int) -> Admission:
    data = event.data
    return Admission(
        data.encounter_ref, data.patient_ref, event.time, data.encounter_class, data.planned, received
    )


def discharge_of(event: EncounterDischarged, received: int, *, cancelled: bool = False) -> Discharge:
    data = event.data
    return Discharge(
        data.encounter_ref,
        data.patient_ref,
        event.facility,
        event.time,
        data.encounter_class,
        data.disposition,
        data.admitted_at,
        received,
        cancelled,
    )
