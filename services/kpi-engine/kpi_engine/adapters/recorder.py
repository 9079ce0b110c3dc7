"""Records a decoded batch and its KPI effects in one PostgreSQL transaction (exactly-once effect).

Steps, in order, inside the transaction:
1. lock each tenant of the batch (transaction advisory locks, sorted): two engine instances never
   interleave one tenant's writes, so no update is lost, and sorted acquisition cannot deadlock;
2. classify every message against what is stored: new, replay (same partition and offset: a
   redelivery after a crash), duplicate (same key and payload) or conflict (same key, other payload);
3. store new events and retractions; resolve retractions in either arrival order;
4. apply the effects of newly effective events and undo those of newly retracted ones;
5. recompute the non-additive scopes they touched (uptime days, A/R days, a patient's index stays);
6. write cells in key order and queue a change notice per changed cell (outbox);
7. count what each facility's feeds delivered, and the events dated before their feed's completeness
   watermark as it stood before the batch (the declaration was wrong: docs/completeness.md).
The consumer commits offsets only after this transaction commits.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import (
    Date,
    DateTime,
    Integer,
    Table,
    Text,
    and_,
    delete,
    func,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, distinct_on, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from kpi_engine.adapters import tables
from kpi_engine.domain.calendar import TenantCalendar
from kpi_engine.domain.cancellations import cancelled_by, fact_of
from kpi_engine.domain.cells import Cell, CellKey
from kpi_engine.domain.computation import DAYS_IN_AR, admission_of, discharge_of
from kpi_engine.domain.contributions import contributions
from kpi_engine.domain.messages import DeadLetter, Decoded
from kpi_engine.domain.readmissions import KPI as READMISSION
from kpi_engine.domain.readmissions import Admission, Discharge, index_outcomes
from kpi_engine.domain.uptime import KPI as UPTIME
from kpi_engine.domain.uptime import Outage, outage_minutes_by_day
from vr_shared.events import validate_event
from vr_shared.events.catalogue import (
    ArSnapshot,
    EncounterAdmitted,
    EncounterDischarged,
    Event,
    FeedComplete,
    SystemOutage,
)
from vr_shared.feeds import feed_of

TenantCell = tuple[str, CellKey]
EventKey = tuple[str, str, str]
FeedSlot = tuple[str, str, str]  # tenant, facility, feed


@dataclass
class NewestEventTimes:
    """Newest event time per (tenant, facility) seen so far: a backfill never makes a feed look older."""

    by_facility: dict[tuple[str, str], datetime] = field(default_factory=dict)

    def saw(self, slot: tuple[str, str], event_time: datetime) -> None:
        if slot not in self.by_facility or event_time > self.by_facility[slot]:
            self.by_facility[slot] = event_time

    def merge(self, other: NewestEventTimes) -> None:
        for slot, event_time in other.by_facility.items():
            self.saw(slot, event_time)


@dataclass
class BatchOutcome:
    stored: int = 0
    replays: int = 0
    duplicates: int = 0
    conflicts: int = 0
    retracted: int = 0
    late: int = 0
    dead_letters: int = 0
    changed_cells: int = 0
    before_watermark: dict[str, int] = field(default_factory=dict)  # by feed
    event_times: NewestEventTimes = field(default_factory=NewestEventTimes)


@dataclass
class _Effects:
    deltas: dict[TenantCell, Cell] = field(default_factory=dict)
    uptime_days: dict[tuple[str, str, str], set[date]] = field(default_factory=lambda: defaultdict(set))
    ar_days: set[tuple[str, str, date]] = field(default_factory=set)
    patients: set[tuple[str, str]] = field(default_factory=set)
    added: dict[Table, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    removed: dict[Table, set[EventKey]] = field(default_factory=lambda: defaultdict(set))
    # (tenant, facility, feed, local day) → [events, newest event time]
    activity: dict[tuple[str, str, str, date], list[Any]] = field(default_factory=dict)

    def received(self, slot: FeedSlot, day: date, event_time: datetime) -> None:
        found = self.activity.setdefault((*slot, day), [0, event_time])
        found[0] += 1
        found[1] = max(found[1], event_time)

    def add(self, tenant: str, key: CellKey, delta: Cell, sign: int) -> None:
        self.deltas.setdefault((tenant, key), Cell()).add(delta, sign)

    def add_row(self, table: Table, key: dict[str, str], **values: Any) -> None:
        self.added[table].append({**key, **values})

    def remove_row(self, table: Table, key: dict[str, str]) -> None:
        self.removed[table].add((key["tenant"], key["source"], key["id"]))


class PostgresRecorder:
    def __init__(
        self, engine: AsyncEngine, schema: str, *, late_after: timedelta = timedelta(days=2)
    ) -> None:
        self._engine = engine
        self._schema = schema
        self._late_after = late_after

    async def record(self, batch: Sequence[Decoded], dead: Sequence[DeadLetter], now: Any) -> BatchOutcome:
        outcome = BatchOutcome(dead_letters=len(dead))
        calendars = {d.origin.tenant: TenantCalendar.of(d.origin.timezone) for d in batch}
        async with self._engine.begin() as conn:
            for tenant in sorted(calendars):
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": f"kpi:{tenant}"}
                )
            await self._record_dead_letters(conn, dead)
            new, duplicates, conflicting = await self._classify(conn, batch, outcome)
            effects = _Effects()
            await self._store(conn, new)
            await self._note_repeats(conn, duplicates, conflicting)
            retracted_now = await self._resolve_retractions(conn, new, calendars, effects)
            outcome.retracted = len(retracted_now)
            retracted_now |= await self._resolve_cancels(conn, new, calendars, effects)
            fed = [(d, slot) for d in new if (slot := _feed_slot(d)) is not None]
            for decoded, slot in fed:
                day = calendars[decoded.origin.tenant].local_date(decoded.event.time)
                effects.received(slot, day, decoded.event.time)
            outcome.before_watermark = await _before_watermark(conn, fed)
            for decoded in new:
                if decoded.key in retracted_now or decoded.event.type == "event.retracted":
                    continue
                _apply(
                    decoded.origin.tenant,
                    decoded.event,
                    decoded.document,
                    calendars[decoded.origin.tenant],
                    1,
                    effects,
                )
                if now - decoded.event.time > self._late_after:
                    outcome.late += 1
                outcome.event_times.saw((decoded.origin.tenant, decoded.event.facility), decoded.event.time)
            await _write_rows(conn, effects)
            await _write_activity(conn, effects)
            absolute = await _recompute(conn, effects, calendars)
            outcome.changed_cells = await _write_cells(conn, effects.deltas, absolute)
            outcome.stored = len(new)
        return outcome

    async def _record_dead_letters(self, conn: AsyncConnection, dead: Sequence[DeadLetter]) -> None:
        if dead:
            rows = [
                {
                    "partition": d.partition,
                    "offset": d.offset,
                    "tenant": d.tenant,
                    "source": d.source,
                    "id": d.id,
                    "reason": d.reason,
                }
                for d in dead
            ]
            await conn.execute(insert(tables.dead_letters).on_conflict_do_nothing(), rows)

    async def _classify(
        self, conn: AsyncConnection, batch: Sequence[Decoded], outcome: BatchOutcome
    ) -> tuple[list[Decoded], dict[EventKey, int], list[Decoded]]:
        stored: dict[EventKey, tuple[bytes, int, int]] = {}
        keys = _event_keys(sorted({d.key for d in batch}))
        rows = await conn.execute(
            select(
                tables.events.c.tenant,
                tables.events.c.source,
                tables.events.c.id,
                tables.events.c.payload_hash,
                tables.events.c.partition,
                tables.events.c.offset,
            ).join(keys, _on_event_key(tables.events, keys))
        )
        for row in rows:
            stored[(row.tenant, row.source, row.id)] = (row.payload_hash, row.partition, row.offset)
        new: list[Decoded] = []
        duplicates: dict[EventKey, int] = defaultdict(int)
        conflicting: list[Decoded] = []
        for decoded in batch:
            seen = stored.get(decoded.key)
            if seen is None:
                stored[decoded.key] = (decoded.payload_hash, decoded.partition, decoded.offset)
                new.append(decoded)
            elif (seen[1], seen[2]) == (decoded.partition, decoded.offset):
                outcome.replays += 1  # redelivered after a crash before the offset commit: not a duplicate
            elif seen[0] == decoded.payload_hash:
                duplicates[decoded.key] += 1
            else:
                conflicting.append(decoded)
        outcome.duplicates, outcome.conflicts = sum(duplicates.values()), len(conflicting)
        return new, duplicates, conflicting

    async def _note_repeats(
        self, conn: AsyncConnection, duplicates: dict[EventKey, int], conflicting: Sequence[Decoded]
    ) -> None:
        """After the new events are stored: a repeat may follow its first delivery in the same batch."""
        if duplicates:
            repeats = _as_table(
                "d",
                {**_KEY_COLUMNS, "count": Integer},
                [(*key, count) for key, count in sorted(duplicates.items())],
            )
            await conn.execute(
                update(tables.events)
                .where(_on_event_key(tables.events, repeats))
                .values(duplicates=tables.events.c.duplicates + repeats.c.count)
            )
        for decoded in conflicting:
            tenant, source, id_ = decoded.key
            statement = insert(tables.conflicts).values(
                tenant=tenant,
                source=source,
                id=id_,
                payload_hash=decoded.payload_hash,
                payload=decoded.document,
            )
            await conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["tenant", "source", "id", "payload_hash"],
                    set_={"deliveries": tables.conflicts.c.deliveries + 1},
                )
            )

    async def _store(self, conn: AsyncConnection, new: Sequence[Decoded]) -> None:
        if not new:
            return
        # COPY: these keys were just found absent while this transaction holds the tenants' locks.
        raw = await conn.get_raw_connection()
        await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
            "events",
            schema_name=self._schema,
            columns=list(tables.EVENT_COPY_COLUMNS),
            records=[
                (
                    d.origin.tenant,
                    d.event.source,
                    d.event.id,
                    d.event.type,
                    d.event.facility,
                    d.event.time,
                    orjson.dumps(d.document).decode(),
                    d.payload_hash,
                    d.partition,
                    d.offset,
                )
                for d in new
            ],
        )
        retractions = [
            {
                "tenant": d.origin.tenant,
                "source": d.event.source,
                "retracted_id": d.event.data.retracted_id,
                "retraction_id": d.event.id,
            }
            for d in new
            if d.event.type == "event.retracted"
        ]
        if retractions:
            await conn.execute(insert(tables.retractions).on_conflict_do_nothing(), retractions)
        cancels = [
            {
                "tenant": d.origin.tenant,
                "patient": patient,
                "encounter": encounter,
                "fact": fact,
                "at": at,
                "source": d.event.source,
                "id": d.event.id,
            }
            for d in new
            if (named := cancelled_by(d.event)) is not None
            for patient, encounter, fact, at in [named]
        ]
        if cancels:
            await conn.execute(insert(tables.cancellations).on_conflict_do_nothing(), cancels)

    async def _resolve_retractions(
        self,
        conn: AsyncConnection,
        new: Sequence[Decoded],
        calendars: dict[str, TenantCalendar],
        effects: _Effects,
    ) -> set[EventKey]:
        """Events that stop counting now: targets of new retractions, and new events retracted earlier."""
        candidates = {d.key for d in new if d.event.type != "event.retracted"}
        candidates |= {
            (d.origin.tenant, d.event.source, d.event.data.retracted_id)
            for d in new
            if d.event.type == "event.retracted"
        }
        if not candidates:
            return set()
        new_keys = {d.key for d in new}
        retracted: set[EventKey] = set()
        keys = _event_keys(sorted(candidates))
        rows = await conn.execute(
            select(
                tables.events.c.tenant, tables.events.c.source, tables.events.c.id, tables.events.c.payload
            )
            .join(keys, _on_event_key(tables.events, keys))
            .join(
                tables.retractions,
                and_(
                    tables.retractions.c.tenant == tables.events.c.tenant,
                    tables.retractions.c.source == tables.events.c.source,
                    tables.retractions.c.retracted_id == tables.events.c.id,
                ),
            )
            .where(tables.events.c.retracted.is_(False), tables.events.c.type != "event.retracted")
        )
        for row in rows:
            key = (row.tenant, row.source, row.id)
            retracted.add(key)
            if key not in new_keys and row.tenant in calendars:  # it counted until now: undo its effects
                _apply(
                    row.tenant, validate_event(row.payload), row.payload, calendars[row.tenant], -1, effects
                )
        await _mark_retracted(conn, retracted)
        return retracted

    async def _resolve_cancels(
        self,
        conn: AsyncConnection,
        new: Sequence[Decoded],
        calendars: dict[str, TenantCalendar],
        effects: _Effects,
    ) -> set[EventKey]:
        """Admissions and discharges that stop counting now (docs/events.md): new ones a cancel names,
        stored or in this batch (their cancels are stored first), and stored ones new cancels name.
        They are marked retracted, like the target of a retraction."""
        facts = [(d.key, named) for d in new if (named := fact_of(d.event)) is not None]
        cancels: dict[tuple[str, str], set[tuple[str, str, datetime]]] = defaultdict(set)
        for d in new:
            if (named := cancelled_by(d.event)) is not None:
                patient, encounter, fact, at = named
                cancels[(d.origin.tenant, patient)].add((encounter, fact, at))
        if not facts and not cancels:
            return set()
        cancelled: set[EventKey] = set()
        if facts:
            named_facts = _as_table(
                "f",
                {
                    "tenant": Text,
                    "patient": Text,
                    "encounter": Text,
                    "fact": Text,
                    "at": DateTime(timezone=True),
                    "source": Text,
                    "id": Text,
                },
                [(key[0], *fact, key[1], key[2]) for key, fact in facts],
            )
            c = tables.cancellations.c
            rows = await conn.execute(
                select(named_facts.c.tenant, named_facts.c.source, named_facts.c.id).join(
                    tables.cancellations,
                    and_(
                        c.tenant == named_facts.c.tenant,
                        c.patient == named_facts.c.patient,
                        c.encounter == named_facts.c.encounter,
                        c.fact == named_facts.c.fact,
                        c.at == named_facts.c.at,
                    ),
                )
            )
            cancelled |= {(row.tenant, row.source, row.id) for row in rows}
        new_keys = {d.key for d in new}
        for row in await _cancelled_stays(conn, cancels) if cancels else []:
            key = (row.tenant, row.source, row.id)
            if key not in new_keys and key not in cancelled and row.tenant in calendars:
                _apply(
                    row.tenant, validate_event(row.payload), row.payload, calendars[row.tenant], -1, effects
                )
                cancelled.add(key)
        await _mark_retracted(conn, cancelled)
        return cancelled


async def _stays_of(conn: AsyncConnection, patients: Sequence[tuple[str, str]]) -> Any:
    """The stay events (admissions and discharges that count) of these (tenant, patient) pairs."""
    touched = _as_table("p", {"tenant": Text, "patient": Text}, patients)
    return await conn.execute(
        select(
            tables.stays.c.tenant,
            tables.stays.c.patient,
            tables.stays.c.source,
            tables.stays.c.id,
            tables.stays.c.payload,
        ).join(
            touched,
            and_(tables.stays.c.tenant == touched.c.tenant, tables.stays.c.patient == touched.c.patient),
        )
    )


async def _cancelled_stays(
    conn: AsyncConnection, cancels: dict[tuple[str, str], set[tuple[str, str, datetime]]]
) -> list[Any]:
    """Stored, counting admissions and discharges that new cancels name (a patient's stays are few)."""
    rows = await _stays_of(conn, sorted(cancels))
    return [
        row
        for row in rows
        if (
            row.payload["data"]["encounter_ref"],
            row.payload["type"],
            datetime.fromisoformat(row.payload["time"]),
        )
        in cancels[(row.tenant, row.patient)]
    ]


def _apply(
    tenant: str,
    event: Event,
    document: dict[str, Any],
    calendar: TenantCalendar,
    sign: int,
    effects: _Effects,
) -> None:
    """Add (sign +1) or remove (sign −1) one event's contribution; rows are written later, in bulk.
    `document` is the event's JSON form (decoded or stored), kept as the stay's payload."""
    for key, delta in contributions(event, calendar):
        effects.add(tenant, key, delta, sign)
    derived = _derived_row(event, document, calendar)
    if derived is not None:
        table, values = derived
        row_key = {"tenant": tenant, "source": event.source, "id": event.id}
        if sign > 0:
            effects.add_row(table, row_key, **values)
        else:
            effects.remove_row(table, row_key)
    _mark_recomputed_scopes(tenant, event, calendar, effects)


def _derived_row(
    event: Event, document: dict[str, Any], calendar: TenantCalendar
) -> tuple[Table, dict[str, Any]] | None:
    """The row an event keeps beside its cells (what its non-additive KPIs are recomputed from)."""
    match event:
        case SystemOutage() if not event.data.planned:
            data = event.data
            return tables.outages, {
                "facility": event.facility,
                "system": data.system,
                "started_at": data.started_at,
                "ended_at": data.ended_at,
            }
        case ArSnapshot():
            return tables.ar_snapshots, {
                "facility": event.facility,
                "day": calendar.local_date(event.time),
                "event_time": event.time,
                "net_ar": event.data.net_ar,
                "avg_daily_net_revenue": event.data.avg_daily_net_revenue,
            }
        case EncounterAdmitted() | EncounterDischarged():
            return tables.stays, {"patient": event.data.patient_ref, "payload": document}
        case FeedComplete():
            return tables.feed_declarations, {
                "facility": event.facility,
                "feed": event.data.feed,
                "through": event.data.through,
                "declared_at": event.time,
            }
    return None


def _mark_recomputed_scopes(tenant: str, event: Event, calendar: TenantCalendar, effects: _Effects) -> None:
    """The scopes whose non-additive KPIs this event changes: recomputed once the batch is in."""
    match event:
        case SystemOutage() if not event.data.planned:
            days = effects.uptime_days[(tenant, event.facility, event.data.system)]
            day = calendar.local_date(event.data.started_at)
            while day <= calendar.local_date(event.data.ended_at):
                days.add(day)
                day += timedelta(days=1)
        case ArSnapshot():
            effects.ar_days.add((tenant, event.facility, calendar.local_date(event.time)))
        case EncounterAdmitted() | EncounterDischarged():
            effects.patients.add((tenant, event.data.patient_ref))


async def _mark_retracted(conn: AsyncConnection, keys: set[EventKey]) -> None:
    if keys:
        table = _event_keys(sorted(keys))
        await conn.execute(
            update(tables.events).where(_on_event_key(tables.events, table)).values(retracted=True)
        )


async def _write_rows(conn: AsyncConnection, effects: _Effects) -> None:
    """One statement per table and kind: the inputs the non-additive KPIs are recomputed from."""
    for table, removed in effects.removed.items():
        if removed:
            keys = _event_keys(sorted(removed))
            await conn.execute(delete(table).where(_on_event_key(table, keys)))
    for table, rows in effects.added.items():
        if rows:
            await conn.execute(insert(table).on_conflict_do_nothing(), rows)


def _feed_slot(decoded: Decoded) -> FeedSlot | None:
    feed = feed_of(decoded.event.type)
    return None if feed is None else (decoded.origin.tenant, decoded.event.facility, feed)


async def _before_watermark(conn: AsyncConnection, fed: Sequence[tuple[Decoded, FeedSlot]]) -> dict[str, int]:
    """New events whose time is before their feed's watermark as stored before this batch, by feed."""
    if not fed:
        return {}
    d = tables.feed_declarations.c
    slots = _as_table("f", {"tenant": Text, "facility": Text, "feed": Text}, sorted({s for _, s in fed}))
    rows = await conn.execute(
        select(d.tenant, d.facility, d.feed, func.max(d.through).label("through"))
        .join(slots, and_(d.tenant == slots.c.tenant, d.facility == slots.c.facility, d.feed == slots.c.feed))
        .group_by(d.tenant, d.facility, d.feed)
    )
    watermarks = {(r.tenant, r.facility, r.feed): r.through for r in rows}
    counts: dict[str, int] = defaultdict(int)
    for decoded, slot in fed:
        through = watermarks.get(slot)
        if through is not None and decoded.event.time < through:
            counts[slot[2]] += 1
    return dict(counts)


async def _write_activity(conn: AsyncConnection, effects: _Effects) -> None:
    """Add the batch's deliveries per facility, feed and day (key order: concurrent writers cannot
    deadlock)."""
    if not effects.activity:
        return
    rows = [(*key, count, newest) for key, (count, newest) in sorted(effects.activity.items())]
    await conn.execute(_ADD_ACTIVITY, _columns(_ACTIVITY_COLUMNS, rows))


_ACTIVITY_COLUMNS = {
    "tenant": "text",
    "facility": "text",
    "feed": "text",
    "day": "date",
    "events": "bigint",
    "newest_event_time": "timestamptz",
}


async def _recompute(
    conn: AsyncConnection, effects: _Effects, calendars: dict[str, TenantCalendar]
) -> dict[TenantCell, Cell | None]:
    """New values of the non-additive cells whose inputs changed (None: the cell no longer exists)."""
    absolute: dict[TenantCell, Cell | None] = {}
    await _recompute_uptime(conn, effects, calendars, absolute)
    await _recompute_ar(conn, effects, absolute)
    await _recompute_patients(conn, sorted(effects.patients), calendars, effects)
    return absolute


async def _recompute_uptime(
    conn: AsyncConnection,
    effects: _Effects,
    calendars: dict[str, TenantCalendar],
    absolute: dict[TenantCell, Cell | None],
) -> None:
    """Every touched system's outages over its touched days, in one query."""
    if not effects.uptime_days:
        return
    scopes = sorted(effects.uptime_days.items())
    spans = []
    for (tenant, facility, system), days in scopes:
        calendar = calendars[tenant]
        spans.append(
            (
                tenant,
                facility,
                system,
                calendar.day_start(min(days)),
                calendar.day_start(max(days) + timedelta(days=1)),
            )
        )
    o = tables.outages.c
    span = _as_table(
        "s",
        {
            "tenant": Text,
            "facility": Text,
            "system": Text,
            "since": DateTime(timezone=True),
            "until": DateTime(timezone=True),
        },
        spans,
    )
    rows = await conn.execute(
        select(o.tenant, o.facility, o.system, o.started_at, o.ended_at).join(
            span,
            and_(
                o.tenant == span.c.tenant,
                o.facility == span.c.facility,
                o.system == span.c.system,
                o.started_at < span.c.until,
                o.ended_at > span.c.since,
            ),
        )
    )
    outages: dict[tuple[str, str, str], list[Outage]] = defaultdict(list)
    for row in rows:
        outages[(row.tenant, row.facility, row.system)].append(Outage(row.started_at, row.ended_at))
    for (tenant, facility, system), days in scopes:
        calendar = calendars[tenant]
        by_day = outage_minutes_by_day(outages[(tenant, facility, system)], calendar)
        for day in days:
            key = CellKey(UPTIME, facility, day, system)
            if day in by_day:
                down, count = by_day[day]
                scheduled = calendar.day_minutes(day)
                absolute[(tenant, key)] = Cell(scheduled - down, scheduled, count)
            else:
                absolute[(tenant, key)] = None


async def _recompute_ar(
    conn: AsyncConnection, effects: _Effects, absolute: dict[TenantCell, Cell | None]
) -> None:
    """Each touched day's latest A/R snapshot, in one query."""
    if not effects.ar_days:
        return
    a = tables.ar_snapshots.c
    days = _as_table("d", {"tenant": Text, "facility": Text, "day": Date}, sorted(effects.ar_days))
    rows = await conn.execute(
        select(a.tenant, a.facility, a.day, a.net_ar, a.avg_daily_net_revenue)
        .join(days, and_(a.tenant == days.c.tenant, a.facility == days.c.facility, a.day == days.c.day))
        # Latest by event time; equal times by source and id, so arrival order never matters.
        .order_by(a.tenant, a.facility, a.day, a.event_time.desc(), a.source.desc(), a.id.desc())
        .ext(distinct_on(a.tenant, a.facility, a.day))
    )
    latest = {(r.tenant, r.facility, r.day): Cell(r.net_ar, r.avg_daily_net_revenue, 1) for r in rows}
    for tenant, facility, day in sorted(effects.ar_days):
        absolute[(tenant, CellKey(DAYS_IN_AR, facility, day))] = latest.get((tenant, facility, day))


async def _recompute_patients(
    conn: AsyncConnection,
    patients: Sequence[tuple[str, str]],
    calendars: dict[str, TenantCalendar],
    effects: _Effects,
) -> None:
    """Re-derive the touched patients' index stays; every changed outcome becomes readmission deltas."""
    stays, before = await _stays_and_index(conn, patients)
    removed: list[EventKey] = []
    added: list[dict[str, Any]] = []
    for tenant, patient in patients:
        now = _index_outcomes_of(stays[(tenant, patient)], calendars[tenant])
        old_rows = before[(tenant, patient)]
        for key in sorted(set(now) | set(old_rows)):
            old, new = old_rows.get(key), now.get(key)
            if old is not None and new is not None and _same_outcome(old, new):
                continue
            if old is not None:
                old_cell = Cell(Decimal(1) if old.readmitted else Decimal(0), Decimal(1), 1)
                effects.add(tenant, CellKey(READMISSION, old.facility, old.day), old_cell, -1)
                removed.append((tenant, *key))
            if new is not None:
                effects.add(tenant, CellKey(READMISSION, new.facility, new.day), new.cell(), 1)
                added.append(_index_row(tenant, patient, key, new))
    index = tables.readmission_index
    if removed:
        keys = _event_keys(sorted(removed))
        await conn.execute(delete(index).where(_on_event_key(index, keys)))
    if added:
        await conn.execute(insert(index), added)


async def _stays_and_index(
    conn: AsyncConnection, patients: Sequence[tuple[str, str]]
) -> tuple[dict[tuple[str, str], list[Any]], dict[tuple[str, str], dict[tuple[str, str], Any]]]:
    """Each patient's stay events, and its index stays as recorded before this batch."""
    stays: dict[tuple[str, str], list[Any]] = defaultdict(list)
    before: dict[tuple[str, str], dict[tuple[str, str], Any]] = defaultdict(dict)
    for row in await _stays_of(conn, patients):
        stays[(row.tenant, row.patient)].append(row)
    touched = _as_table("p", {"tenant": Text, "patient": Text}, patients)
    index = tables.readmission_index
    rows = await conn.execute(
        select(index).join(
            touched, and_(index.c.tenant == touched.c.tenant, index.c.patient == touched.c.patient)
        )
    )
    for row in rows:
        before[(row.tenant, row.patient)][(row.source, row.id)] = row
    return stays, before


def _index_outcomes_of(stay_rows: list[Any], calendar: TenantCalendar) -> dict[tuple[str, str], Any]:
    admissions: list[Admission] = []
    discharges: dict[tuple[str, str], Discharge] = {}
    for row in stay_rows:
        event = validate_event(row.payload)
        if isinstance(event, EncounterAdmitted):
            admissions.append(admission_of(event))
        elif isinstance(event, EncounterDischarged):
            discharges[(row.source, row.id)] = discharge_of(event)
    return index_outcomes(discharges, admissions, calendar)


def _same_outcome(old: Any, new: Any) -> bool:
    return bool((old.facility, old.day, old.readmitted) == (new.facility, new.day, new.readmitted))


def _index_row(tenant: str, patient: str, key: tuple[str, str], new: Any) -> dict[str, Any]:
    return {
        "tenant": tenant,
        "source": key[0],
        "id": key[1],
        "patient": patient,
        "facility": new.facility,
        "day": new.day,
        "readmitted": new.readmitted,
    }


async def _write_cells(
    conn: AsyncConnection, deltas: dict[TenantCell, Cell], absolute: dict[TenantCell, Cell | None]
) -> int:
    """Deltas are added, absolute values replace, cells that no longer exist are deleted; each changed
    cell queues its change notice in the same statement. Rows go in key order, so concurrent writers
    cannot deadlock. Returns how many cells changed."""
    additions = [_cell_values(k, d) for k, d in sorted(deltas.items()) if not d.is_empty()]
    replacements = [_cell_values(k, c) for k, c in sorted(absolute.items()) if c is not None]
    gone = sorted(k for k, c in absolute.items() if c is None)
    changed = 0
    for rows, statement in ((additions, _ADD_CELLS), (replacements, _REPLACE_CELLS)):
        if rows:
            result = await conn.execute(statement, _columns(_CELL_COLUMNS, rows))
            emptied = [tuple(row) for row in result]  # a retraction took these cells back to nothing
            changed += len(rows)
            if emptied:
                await conn.execute(_DELETE_EMPTY_CELLS, _columns(_CELL_KEY_COLUMNS, emptied))
    if gone:
        keys = [(tenant, k.kpi, k.facility, k.day, k.dimension) for tenant, k in gone]
        result = await conn.execute(_DELETE_CELLS, _columns(_CELL_KEY_COLUMNS, keys))
        changed += result.scalar_one()
    return changed


def _columns(columns: dict[str, str], rows: Sequence[Sequence[Any]]) -> dict[str, list[Any]]:
    """Rows as one array per column: one parameter each whatever the number of rows."""
    return {name: [row[i] for row in rows] for i, name in enumerate(columns)}


_CELL_KEY_COLUMNS = {"tenant": "text", "kpi": "text", "facility": "text", "day": "date", "dimension": "text"}
_CELL_COLUMNS = {
    **_CELL_KEY_COLUMNS,
    "numerator": "numeric",
    "denominator": "numeric",
    "sample_size": "bigint",
}


def _unnest(columns: dict[str, str]) -> str:
    arrays = ", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in columns.items())
    return f"unnest({arrays}) AS r({', '.join(columns)})"


_KEY_MATCH = " AND ".join(f"c.{name} = r.{name}" for name in _CELL_KEY_COLUMNS)
_NOTICE = """jsonb_build_object('kpi', kpi, 'tenant', tenant, 'facility', facility, 'bucket', day::text,
    'dimension', dimension, 'numerator', numerator::text, 'denominator', denominator::text,
    'sample_size', sample_size)"""
_ORDER = "tenant, kpi, facility, day, dimension"


def _upsert_cells(new_value: str) -> Any:
    """Upsert cell rows; queue a notice per written cell (outbox, key order); return the emptied keys."""
    values = ", ".join(
        f"{name} = {new_value.format(name=name)}" for name in ("numerator", "denominator", "sample_size")
    )
    return text(
        f"""
        WITH written AS (
            INSERT INTO cells ({", ".join(_CELL_COLUMNS)})
            SELECT * FROM {_unnest(_CELL_COLUMNS)}
            ON CONFLICT ({_ORDER}) DO UPDATE SET {values}
            RETURNING *
        ), queued AS (
            INSERT INTO outbox (payload) SELECT {_NOTICE} FROM written ORDER BY {_ORDER}
        )
        SELECT {_ORDER} FROM written WHERE numerator = 0 AND denominator = 0 AND sample_size = 0
        """
    )


_ADD_CELLS = _upsert_cells("cells.{name} + excluded.{name}")
_ADD_ACTIVITY = text(
    f"""
    INSERT INTO feed_activity ({", ".join(_ACTIVITY_COLUMNS)})
    SELECT * FROM {_unnest(_ACTIVITY_COLUMNS)}
    ON CONFLICT (tenant, facility, feed, day) DO UPDATE SET
        events = feed_activity.events + excluded.events,
        newest_event_time = GREATEST(feed_activity.newest_event_time, excluded.newest_event_time)
    """
)
_REPLACE_CELLS = _upsert_cells("excluded.{name}")
_DELETE_EMPTY_CELLS = text(f"DELETE FROM cells c USING {_unnest(_CELL_KEY_COLUMNS)} WHERE {_KEY_MATCH}")
_DELETE_CELLS = text(
    f"""
    WITH deleted AS (
        DELETE FROM cells c USING {_unnest(_CELL_KEY_COLUMNS)} WHERE {_KEY_MATCH} RETURNING c.*
    ), queued AS (
        INSERT INTO outbox (payload)
        SELECT jsonb_build_object('kpi', kpi, 'tenant', tenant, 'facility', facility, 'bucket', day::text,
            'dimension', dimension, 'numerator', '0', 'denominator', '0', 'sample_size', 0)
        FROM deleted ORDER BY {_ORDER}
    )
    SELECT count(*) FROM deleted
    """
)


def _as_table(alias: str, columns: dict[str, Any], rows: Sequence[Sequence[Any]]) -> Any:
    """Rows as a table, `unnest` of one typed array per column: one parameter per column whatever the
    number of rows, and a join instead of a long row-IN list."""
    arrays = [literal([row[i] for row in rows], ARRAY(kind)) for i, kind in enumerate(columns.values())]
    return func.unnest(*arrays).table_valued(*columns).render_derived(name=alias)


_KEY_COLUMNS = {"tenant": Text, "source": Text, "id": Text}


def _event_keys(keys: Sequence[EventKey]) -> Any:
    return _as_table("k", _KEY_COLUMNS, keys)


def _on_event_key(table: Any, keys: Any) -> Any:
    return and_(table.c.tenant == keys.c.tenant, table.c.source == keys.c.source, table.c.id == keys.c.id)


def _cell_values(key: TenantCell, cell: Cell) -> tuple[Any, ...]:
    tenant, k = key
    return (tenant, k.kpi, k.facility, k.day, k.dimension, cell.numerator, cell.denominator, cell.sample_size)
