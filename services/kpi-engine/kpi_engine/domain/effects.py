"""What a batch of events does to the KPIs, decided without a database (docs/kpis.md).

The recorder (kpi_engine.adapters.recorder) reads what it must from PostgreSQL and writes what this
module decides: each event's additive deltas, the rows the non-additive KPIs are recomputed from, the
scopes to recompute and lock, and the feed activity. Applying with sign −1 undoes an event exactly (a
retraction or a cancel). A discharge's length of stay and patient days are its stay's: the patient's
recomputation moves them as the stay's standing discharge changes (`stay_changes`). A cancelled
discharge keeps its stay row, marked cancelled: it never stands, but while it is its stay's last
received, the stay has no discharge (kpi_engine.domain.readmissions.standing_discharges).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from kpi_engine.domain.calendar import TenantCalendar
from kpi_engine.domain.cancellations import ADMITTED
from kpi_engine.domain.cells import Cell, CellKey
from kpi_engine.domain.contributions import contributions, stay_contributions
from kpi_engine.domain.messages import Decoded
from kpi_engine.domain.readmissions import KPI as READMISSION
from kpi_engine.domain.readmissions import Admission, Discharge, IndexOutcome, standing_discharges
from vr_shared.events.catalogue import (
    ArSnapshot,
    EncounterAdmitted,
    EncounterDischarged,
    Event,
    FeedComplete,
    SystemOutage,
)
from vr_shared.feeds import feed_of

EventKey = tuple[str, str, str]  # tenant, source, id
TenantCell = tuple[str, CellKey]
Scope = tuple[str, str]  # tenant, scope name (what a scope lock row is keyed by)

# The derived rows an event keeps beside its cells, by what they are (the recorder maps each to a table).
STAYS, OUTAGES, AR_SNAPSHOTS, FEED_DECLARATIONS = "stays", "outages", "ar_snapshots", "feed_declarations"


def cell_order(item: tuple[TenantCell, Any]) -> tuple[Any, ...]:
    """The one global order of cells (the primary key's): concurrent writers lock rows in it."""
    tenant, key = item[0]
    return (tenant, key.kpi, key.facility, key.day, key.dimension)


@dataclass
class Effects:
    """A batch's effects, accumulated event by event (sign +1 counts an event, −1 takes it back)."""

    deltas: dict[TenantCell, Cell] = field(default_factory=dict)
    uptime_days: dict[tuple[str, str, str], set[date]] = field(default_factory=lambda: defaultdict(set))
    ar_days: set[tuple[str, str, date]] = field(default_factory=set)
    patients: set[tuple[str, str]] = field(default_factory=set)
    added: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    removed: dict[str, set[EventKey]] = field(default_factory=lambda: defaultdict(set))
    cancelled_stays: set[EventKey] = field(default_factory=set)  # stored discharges a cancel stops now
    # (tenant, facility, feed, local day) → [events, newest event time]
    activity: dict[tuple[str, str, str, date], list[Any]] = field(default_factory=dict)

    def apply(self, tenant: str, event: Event, calendar: TenantCalendar, sign: int) -> None:
        """Add (sign +1) or remove (sign −1) one event's contribution; rows are written later, in bulk."""
        for key, delta in contributions(event, calendar):
            self.add(tenant, key, delta, sign)
        derived = derived_row(event, calendar)
        if derived is not None:
            kind, values = derived
            if sign > 0:
                self.added[kind].append({"tenant": tenant, "source": event.source, "id": event.id, **values})
            else:
                self.removed[kind].add((tenant, event.source, event.id))
        self._mark_recomputed_scopes(tenant, event, calendar)

    def cancel_discharge(
        self, tenant: str, event: EncounterDischarged, calendar: TenantCalendar, *, stored: bool
    ) -> None:
        """A discharge a cancel stops: its stay row is kept (a new discharge's is written), marked
        cancelled, so it still governs its stay while it is the last received; the patient is
        recomputed."""
        if stored:
            self.cancelled_stays.add((tenant, event.source, event.id))
        else:
            values = _stay(
                event,
                planned=False,
                disposition=event.data.disposition,
                admitted_at=event.data.admitted_at,
                cancelled=True,
            )
            self.added[STAYS].append({"tenant": tenant, "source": event.source, "id": event.id, **values})
        self._mark_recomputed_scopes(tenant, event, calendar)

    def add(self, tenant: str, key: CellKey, delta: Cell, sign: int) -> None:
        found = self.deltas.get((tenant, key))
        if found is None:
            found = self.deltas[(tenant, key)] = Cell()
        found.add(delta, sign)

    def received(self, tenant: str, event: Event, calendar: TenantCalendar) -> None:
        """A new event of a tracked feed: counted in the facility's delivery for its local day."""
        feed = feed_of(event.type)
        if feed is None:
            return
        slot = (tenant, event.facility, feed, calendar.local_date(event.time))
        found = self.activity.setdefault(slot, [0, event.time])
        found[0] += 1
        found[1] = max(found[1], event.time)

    def recomputed_scopes(self) -> list[Scope]:
        """The scopes these effects recompute, in the lock order."""
        scopes = {(tenant, patient_scope(patient)) for tenant, patient in self.patients}
        scopes |= {(tenant, uptime_scope(facility, system)) for tenant, facility, system in self.uptime_days}
        scopes |= {(tenant, ar_scope(facility)) for tenant, facility, _ in self.ar_days}
        return sorted(scopes)

    def _mark_recomputed_scopes(self, tenant: str, event: Event, calendar: TenantCalendar) -> None:
        match event:
            case SystemOutage() if not event.data.planned:
                days = self.uptime_days[(tenant, event.facility, event.data.system)]
                day = calendar.local_date(event.data.started_at)
                last = calendar.local_date(event.data.ended_at)
                while day <= last:
                    days.add(day)
                    day += timedelta(days=1)
            case ArSnapshot():
                self.ar_days.add((tenant, event.facility, calendar.local_date(event.time)))
            case EncounterAdmitted() | EncounterDischarged():
                self.patients.add((tenant, event.data.patient_ref))


def batch_effects(
    new: Sequence[Decoded],
    stopped: Mapping[EventKey, Event],
    calendars: Mapping[str, TenantCalendar],
    *,
    cancelled: Collection[EventKey] = (),
) -> tuple[Effects, list[Decoded]]:
    """A batch's effects: stored events that stop counting now (`stopped`: retracted, or cancelled —
    those of them in `cancelled`) are taken back, new events that count are added, and every new event
    of a tracked feed counts as delivered. A cancelled discharge, stored or new, is kept as its stay's
    cancelled discharge rather than forgotten. Returns the effects and the new events that count."""
    effects = Effects()
    new_keys = {d.key for d in new}
    for key, event in stopped.items():
        if key in new_keys:
            continue
        if key in cancelled and isinstance(event, EncounterDischarged):
            effects.cancel_discharge(key[0], event, calendars[key[0]], stored=True)
        else:  # it counted until now
            effects.apply(key[0], event, calendars[key[0]], -1)
    counted: list[Decoded] = []
    for decoded in new:
        effects.received(decoded.origin.tenant, decoded.event, calendars[decoded.origin.tenant])
    for decoded in new:  # batch order: the order the stay rows are numbered in
        tenant, event = decoded.origin.tenant, decoded.event
        if decoded.key not in stopped and event.type != "event.retracted":
            counted.append(decoded)
            effects.apply(tenant, event, calendars[tenant], 1)
        elif decoded.key in cancelled and isinstance(event, EncounterDischarged):
            effects.cancel_discharge(tenant, event, calendars[tenant], stored=False)
    return effects, counted


def scope_of(event: Event) -> str | None:
    """The scope an event's non-additive effects are recomputed in — what two engine instances could
    both recompute: a patient's readmission state (stays and their cancels), a system's outages, a
    facility's A/R snapshots. Additive effects need none: cells take deltas in one key order."""
    match event:
        case SystemOutage() if not event.data.planned:
            return uptime_scope(event.facility, event.data.system)
        case ArSnapshot():
            return ar_scope(event.facility)
    patient = getattr(event.data, "patient_ref", None)
    return None if patient is None else patient_scope(patient)


def patient_scope(patient: str) -> str:
    return f"patient:{patient}"


def uptime_scope(facility: str, system: str) -> str:
    return f"uptime:{facility}:{system}"


def ar_scope(facility: str) -> str:
    return f"ar:{facility}"


def derived_row(event: Event, calendar: TenantCalendar) -> tuple[str, dict[str, Any]] | None:
    """The row an event keeps beside its cells (what its non-additive KPIs are recomputed from)."""
    match event:
        case SystemOutage() if not event.data.planned:
            data = event.data
            return OUTAGES, {
                "facility": event.facility,
                "system": data.system,
                "started_at": data.started_at,
                "ended_at": data.ended_at,
            }
        case ArSnapshot():
            return AR_SNAPSHOTS, {
                "facility": event.facility,
                "day": calendar.local_date(event.time),
                "event_time": event.time,
                "net_ar": event.data.net_ar,
                "avg_daily_net_revenue": event.data.avg_daily_net_revenue,
            }
        case EncounterAdmitted():
            return STAYS, _stay(
                event, planned=event.data.planned, disposition=None, admitted_at=None, cancelled=False
            )
        case EncounterDischarged():
            discharge = event.data
            return STAYS, _stay(
                event,
                planned=False,
                disposition=discharge.disposition,
                admitted_at=discharge.admitted_at,
                cancelled=False,
            )
        case FeedComplete():
            return FEED_DECLARATIONS, {
                "facility": event.facility,
                "feed": event.data.feed,
                "through": event.data.through,
                "declared_at": event.time,
            }
    return None


def _stay(
    event: EncounterAdmitted | EncounterDischarged,
    *,
    planned: bool,
    disposition: str | None,
    admitted_at: datetime | None,
    cancelled: bool,
) -> dict[str, Any]:
    return {
        "patient": event.data.patient_ref,
        "type": event.type,
        "encounter": event.data.encounter_ref,
        "facility": event.facility,
        "at": event.time,
        "encounter_class": event.data.encounter_class,
        "planned": planned,
        "disposition": disposition,
        "admitted_at": admitted_at,
        "cancelled": cancelled,
    }


@dataclass(frozen=True, slots=True)
class StoredStay:
    """A stay row as stored (stays table): enough to recompute a patient without its event."""

    source: str
    id: str
    type: str
    encounter: str
    patient: str
    facility: str
    at: datetime
    encounter_class: str
    planned: bool
    disposition: str | None
    admitted_at: datetime | None
    received: int  # the engine's record order (a sequence taken under the patient's scope lock)
    cancelled: bool = False  # a discharge a cancel stops (its own, or its stay's admission's)

    def admission(self) -> Admission:
        return Admission(
            self.encounter, self.patient, self.at, self.encounter_class, self.planned, self.received
        )

    def discharge(self) -> Discharge:
        assert self.disposition is not None and self.admitted_at is not None
        return Discharge(
            self.encounter,
            self.patient,
            self.facility,
            self.at,
            self.encounter_class,
            self.disposition,
            self.admitted_at,
            self.received,
            self.cancelled,
        )


# Above every stored `received`: a batch's stays are recorded after every stored one of their patient
# (whose scope is locked), in batch order — the order the sequence numbers them in when they are written.
BATCH_RECEIVED = 1 << 62


def stays_now(
    stored: Mapping[tuple[str, str], list[StoredStay]], effects: Effects
) -> dict[tuple[str, str], list[StoredStay]]:
    """The patients' stays once these effects are written: the stored ones (by tenant and patient)
    less those the effects remove, those they cancel marked so, plus those they add, received last."""
    removed, cancelled = effects.removed.get(STAYS, set()), effects.cancelled_stays
    now = {
        (tenant, patient): _less(tenant, stays, removed, cancelled) if removed or cancelled else list(stays)
        for (tenant, patient), stays in stored.items()
    }
    for n, row in enumerate(effects.added.get(STAYS, [])):
        now.setdefault((row["tenant"], row["patient"]), []).append(_stored(row, BATCH_RECEIVED + n))
    return now


def _stored(row: Mapping[str, Any], received: int) -> StoredStay:
    return StoredStay(
        row["source"],
        row["id"],
        row["type"],
        row["encounter"],
        row["patient"],
        row["facility"],
        row["at"],
        row["encounter_class"],
        row["planned"],
        row["disposition"],
        row["admitted_at"],
        received,
        row["cancelled"],
    )


def _less(
    tenant: str, stays: Iterable[StoredStay], removed: set[EventKey], cancelled: set[EventKey]
) -> list[StoredStay]:
    return [
        replace(stay, cancelled=True) if (tenant, stay.source, stay.id) in cancelled else stay
        for stay in stays
        if (tenant, stay.source, stay.id) not in removed
    ]


def stay_changes(
    tenant: str,
    was: Mapping[tuple[str, str], Discharge],
    is_: Mapping[tuple[str, str], Discharge],
    calendar: TenantCalendar,
    effects: Effects,
) -> None:
    """Length of stay and patient days follow each stay's standing discharge (`was`, `is_`: the
    patient's standing discharges before and after the batch, `standing_discharges`): a discharge that
    stops standing (replaced by a later one, cancelled, retracted, or its stay's last received
    cancelled) is taken back, one that starts standing (new, or standing again after a retraction) is
    added."""
    for key in sorted(was.keys() - is_.keys()):
        for cell, delta in stay_contributions(was[key], calendar):
            effects.add(tenant, cell, delta, -1)
    for key in sorted(is_.keys() - was.keys()):
        for cell, delta in stay_contributions(is_[key], calendar):
            effects.add(tenant, cell, delta, 1)


@dataclass
class IndexChanges:
    """How a patient's index stays changed: rows to delete and to insert, cells to adjust (in effects)."""

    removed: list[EventKey] = field(default_factory=list)
    added: list[dict[str, Any]] = field(default_factory=list)


def readmission_changes(
    tenant: str,
    patient: str,
    before: Mapping[tuple[str, str], IndexOutcome],
    now: Mapping[tuple[str, str], IndexOutcome],
    effects: Effects,
    changes: IndexChanges,
) -> None:
    """Every index stay whose outcome changed becomes −old / +new readmission deltas and row changes."""
    for key in sorted(set(now) | set(before)):
        old, new = before.get(key), now.get(key)
        if old is not None and new is not None and old == new:
            continue
        if old is not None:
            effects.add(tenant, CellKey(READMISSION, old.facility, old.day), old.cell(), -1)
            changes.removed.append((tenant, *key))
        if new is not None:
            effects.add(tenant, CellKey(READMISSION, new.facility, new.day), new.cell(), 1)
            changes.added.append(
                {
                    "tenant": tenant,
                    "source": key[0],
                    "id": key[1],
                    "patient": patient,
                    "facility": new.facility,
                    "day": new.day,
                    "readmitted": new.readmitted,
                }
            )


def stays_as_facts(stays: Sequence[StoredStay]) -> tuple[list[Admission], dict[tuple[str, str], Discharge]]:
    """A patient's stored stays as the admissions and the standing discharges (by event key) that
    readmissions and length of stay are decided from."""
    return [stay.admission() for stay in stays if stay.type == ADMITTED], standing_of(stays)


def standing_of(stays: Iterable[StoredStay]) -> dict[tuple[str, str], Discharge]:
    """A patient's standing discharges (by event key), chosen among its stored stays' discharges
    (`standing_discharges`): only those that stand are built — a year's backfill recomputes each
    touched patient's whole history twice a batch."""
    rows = {(stay.source, stay.id): stay for stay in stays if stay.type != ADMITTED}
    return {key: stay.discharge() for key, stay in standing_discharges(rows).items()}
