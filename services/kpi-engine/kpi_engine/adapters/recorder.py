"""Records a decoded batch and its KPI effects in PostgreSQL with an exactly-once effect
(docs/decisions/0005-exactly-once-effect.md).

The batch's transaction, in order:
1. dead letters;
2. the events: one COPY where every key is new (the usual case), else staged with one COPY and inserted
   where their key is absent (the unique key is what two instances delivering one event wait on); every
   message classified against what is stored (kpi_engine.domain.classification) — new, replay (same
   partition and offset: a redelivery after a crash), duplicate (same key and payload) or conflict (same
   key, other payload); retractions and cancels recorded beside them;
3. retractions resolved in either arrival order: a retraction stays pending until its event is stored;
   the tenant's pending ones whose event is there now (new, or new retractions of stored events) are
   resolved and their events marked retracted;
4. the scopes the batch recomputes (a patient, a system's outages, a facility's A/R) locked, in key order;
5. cancels resolved under their patient's lock (a cancelled admission takes its stay's discharges; a
   cancelled discharge keeps its stay row, marked cancelled: the last received of a stay's discharges
   decides whether it has one);
6. effects (kpi_engine.domain.effects): stored events that stop counting are taken back, new ones
   added; derived rows, recomputed non-additive cells, cells with their change notices, feed activity.
The consumer commits offsets only after this transaction commits.

Then a second, short transaction settles late retractions: a retraction and its event recorded at the
same moment by two instances, each before the other committed, did not see each other in step 3. Each
instance looks again after its own commit — whichever committed second finds the pair, and resolving
the pending retraction (a row lock, `WHERE pending`) lets exactly one of them take its effects back.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import orjson
from sqlalchemy import DateTime, Integer, Text, and_, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from kpi_engine.adapters import tables
from kpi_engine.adapters.effect_writes import lock_scopes, write_effects
from kpi_engine.adapters.sql import KEY_COLUMNS, as_table, columns_of, event_keys, on_event_key, unnest
from kpi_engine.domain.calendar import TenantCalendar
from kpi_engine.domain.cancellations import ADMITTED, DISCHARGED, cancelled_by
from kpi_engine.domain.classification import Classified, Stored, classify
from kpi_engine.domain.effects import Effects, EventKey, Scope, batch_effects, scope_of
from kpi_engine.domain.messages import DeadLetter, Decoded
from kpi_engine.domain.stays import stopping_facts
from vr_shared.events import validate_event
from vr_shared.feeds import feed_of

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

    def count(self, classified: Classified) -> None:
        self.stored, self.replays = len(classified.new), classified.replays
        self.duplicates = sum(classified.duplicates.values())
        self.conflicts = len(classified.conflicting)


class PostgresRecorder:
    def __init__(
        self, engine: AsyncEngine, schema: str, *, late_after: timedelta = timedelta(days=2)
    ) -> None:
        self._engine = engine
        self._schema = schema
        self._late_after = late_after
        self._zones: dict[str, str] = {}  # tenant → zone, as stored in tenant_zones

    async def record(self, batch: Sequence[Decoded], dead: Sequence[DeadLetter], now: Any) -> BatchOutcome:
        zones = {d.origin.tenant: d.origin.timezone for d in batch}
        calendars = {tenant: TenantCalendar.of(zone) for tenant, zone in zones.items()}
        await self._note_zones(zones)
        async with self._engine.begin() as conn:
            outcome = await self._record(conn, batch, dead, calendars, now)
        if batch:
            async with self._engine.begin() as conn:
                outcome.retracted += await _settle_late_retractions(conn, list(calendars), calendars)
        return outcome

    async def _note_zones(self, zones: dict[str, str]) -> None:
        """Store a tenant's zone when this process first sees it or it changes — in its own statement,
        not in the batch's transaction, where its row lock would serialise instances by tenant."""
        changed = sorted((tenant, zone) for tenant, zone in zones.items() if self._zones.get(tenant) != zone)
        if changed:
            statement = insert(tables.tenant_zones).values([{"tenant": t, "timezone": z} for t, z in changed])
            async with self._engine.begin() as conn:
                await conn.execute(
                    statement.on_conflict_do_update(
                        index_elements=["tenant"], set_={"timezone": statement.excluded.timezone}
                    )
                )
            self._zones.update(changed)

    async def _record(
        self,
        conn: AsyncConnection,
        batch: Sequence[Decoded],
        dead: Sequence[DeadLetter],
        calendars: dict[str, TenantCalendar],
        now: datetime,
    ) -> BatchOutcome:
        outcome = BatchOutcome(dead_letters=len(dead))
        await _record_dead_letters(conn, dead)
        if not batch:
            return outcome
        classified = await self._store(conn, batch)
        outcome.count(classified)
        new, new_keys = classified.new, {d.key for d in classified.new}
        retracted = await _retract(conn, list(calendars))
        outcome.retracted = len(retracted)
        stored_retracted = [(key[0], event) for key, event in retracted.items() if key not in new_keys]
        await lock_scopes(conn, _scopes([(d.origin.tenant, d.event) for d in new] + stored_retracted))
        cancelled = await _resolve_cancels(conn, new, already=set(retracted))
        stopped = {**retracted, **cancelled}
        effects, counted = batch_effects(new, stopped, calendars, cancelled=set(cancelled))
        for decoded in counted:
            if now - decoded.event.time > self._late_after:
                outcome.late += 1
            outcome.event_times.saw((decoded.origin.tenant, decoded.event.facility), decoded.event.time)
        fed = [(d, slot) for d in new if (slot := _feed_slot(d)) is not None]
        outcome.before_watermark = await _before_watermark(conn, fed)
        outcome.changed_cells = await write_effects(conn, effects, calendars)
        return outcome

    async def _store(self, conn: AsyncConnection, batch: Sequence[Decoded]) -> Classified:
        """Insert the batch's first message of each key where the key is absent, classify every
        message, and record repeats, retractions and cancels."""
        firsts: dict[EventKey, Decoded] = {}
        for decoded in batch:
            firsts.setdefault(decoded.key, decoded)
        rows = [_staged(d) for _, d in sorted(firsts.items())]  # key order: what two inserters wait in
        inserted, stored = await self._insert_absent(conn, rows)
        classified = classify(batch, inserted, stored)
        await _note_repeats(conn, classified)
        await _store_retractions_and_cancels(conn, classified.new)
        return classified

    async def _insert_absent(
        self, conn: AsyncConnection, rows: list[tuple[Any, ...]]
    ) -> tuple[set[EventKey], dict[EventKey, Stored]]:
        """The keys inserted, and what was stored under the others. Usually every key is new: one COPY
        straight into `events` under a savepoint. If any is stored already (a replay, a duplicate, another
        instance's insert this COPY waited for), the savepoint is rolled back and the batch is staged with
        one COPY and inserted where absent."""
        driver = (await conn.get_raw_connection()).driver_connection
        try:
            async with conn.begin_nested():
                await driver.copy_records_to_table(  # type: ignore[union-attr]
                    "events", schema_name=self._schema, columns=list(tables.EVENT_COPY_COLUMNS), records=rows
                )
            return {(row[0], row[1], row[2]) for row in rows}, {}
        except asyncpg.UniqueViolationError:
            pass
        await conn.execute(_CREATE_STAGING)
        await driver.copy_records_to_table(  # type: ignore[union-attr]
            "staged_events", columns=list(tables.EVENT_COPY_COLUMNS), records=rows
        )
        inserted: set[EventKey] = set()
        stored: dict[EventKey, Stored] = {}
        for row in await conn.execute(_INSERT_STAGED):
            key = (row.tenant, row.source, row.id)
            if row.inserted:
                inserted.add(key)
            else:
                stored[key] = (row.payload_hash, row.partition, row.offset)
        # A key another instance committed while this insert waited for it is in neither answer (the
        # statement's snapshot predates that commit): read it now.
        unseen = sorted({(row[0], row[1], row[2]) for row in rows} - inserted - set(stored))
        if unseen:
            stored.update(await _stored(conn, unseen))
        return inserted, stored


def _staged(d: Decoded) -> tuple[Any, ...]:
    return (
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


# A temporary table per connection, emptied at each commit: the batch's COPY target.
_CREATE_STAGING = text(
    "CREATE TEMPORARY TABLE IF NOT EXISTS staged_events (LIKE events INCLUDING DEFAULTS) "
    "ON COMMIT DELETE ROWS"
)
_COPIED = ", ".join(f'"{c}"' for c in tables.EVENT_COPY_COLUMNS)
# Inserted in key order (the order two instances wait on each other's keys in); what was already stored
# is read in the same statement, whose snapshot does not include the rows it inserts.
_INSERT_STAGED = text(
    f"""
    WITH inserted AS (
        INSERT INTO events ({_COPIED}) SELECT {_COPIED} FROM staged_events ORDER BY tenant, source, id
        ON CONFLICT (tenant, source, id) DO NOTHING
        RETURNING tenant, source, id
    )
    SELECT tenant, source, id, true AS inserted, NULL::bytea AS payload_hash, NULL::int AS partition,
        NULL::bigint AS "offset"
    FROM inserted
    UNION ALL
    SELECT e.tenant, e.source, e.id, false, e.payload_hash, e.partition, e."offset"
    FROM events e JOIN staged_events s USING (tenant, source, id)
    """
)


async def _stored(conn: AsyncConnection, keys: Sequence[EventKey]) -> dict[EventKey, Stored]:
    e = tables.events.c
    rows = await _event_rows(conn, keys, e.payload_hash, e.partition, e.offset)
    return {(r.tenant, r.source, r.id): (r.payload_hash, r.partition, r.offset) for r in rows}


async def _event_rows(conn: AsyncConnection, keys: Sequence[EventKey], *columns: Any) -> Any:
    """The stored events of these keys: their key and the given columns."""
    found, e = event_keys(keys), tables.events.c
    return await conn.execute(
        select(e.tenant, e.source, e.id, *columns).join(found, on_event_key(tables.events, found))
    )


async def _record_dead_letters(conn: AsyncConnection, dead: Sequence[DeadLetter]) -> None:
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


async def _note_repeats(conn: AsyncConnection, classified: Classified) -> None:
    """After the new events are stored: a repeat may follow its first delivery in the same batch."""
    if classified.duplicates:
        repeats = as_table(
            "d",
            {**KEY_COLUMNS, "count": Integer},
            [(*key, count) for key, count in sorted(classified.duplicates.items())],
        )
        await conn.execute(
            update(tables.events)
            .where(on_event_key(tables.events, repeats))
            .values(duplicates=tables.events.c.duplicates + repeats.c.count)
        )
    for decoded in classified.conflicting:
        tenant, source, id_ = decoded.key
        statement = insert(tables.conflicts).values(
            tenant=tenant, source=source, id=id_, payload_hash=decoded.payload_hash, payload=decoded.document
        )
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=["tenant", "source", "id", "payload_hash"],
                set_={"deliveries": tables.conflicts.c.deliveries + 1},
            )
        )


async def _store_retractions_and_cancels(conn: AsyncConnection, new: Sequence[Decoded]) -> None:
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


_RETRACT = text(
    """
    WITH found AS (
        UPDATE retractions t SET pending = false
        FROM events e
        WHERE t.pending AND t.tenant = ANY(CAST(:tenants AS text[]))
            AND e.tenant = t.tenant AND e.source = t.source AND e.id = t.retracted_id
        RETURNING t.tenant, t.source, t.retracted_id
    )
    UPDATE events e SET retracted = true
    FROM found
    WHERE e.tenant = found.tenant AND e.source = found.source AND e.id = found.retracted_id
        AND e.type <> 'event.retracted'
    RETURNING e.tenant, e.source, e.id, e.payload
    """
)


async def _retract(conn: AsyncConnection, tenants: Sequence[str]) -> dict[EventKey, Any]:
    """Pending retractions of these tenants whose event is now stored (either arrival order): the event
    is marked retracted and returned. A retraction's row lock and `pending` make one transaction, of
    any number racing, the one that resolves it — and takes its event back. An event a cancel marked
    already is returned too: a cancelled discharge withdrawn as sent in error stops governing its stay
    (its row goes), and taking back a cancelled admission, which counts nowhere, changes nothing. Only
    admissions and discharges are ever marked by a cancel, and a key is retracted at most once (one
    retraction row per key), so nothing is taken back twice."""
    rows = await conn.execute(_RETRACT, {"tenants": sorted(set(tenants))})
    return {(r.tenant, r.source, r.id): validate_event(r.payload) for r in rows}


async def _settle_late_retractions(
    conn: AsyncConnection, tenants: Sequence[str], calendars: dict[str, TenantCalendar]
) -> int:
    """After the batch's commit: pending retractions whose event another instance committed meanwhile
    (or that a crash between the two transactions left). Everything found here counted until now."""
    retracted = await _retract(conn, tenants)
    if not retracted:
        return 0
    await lock_scopes(conn, _scopes([(key[0], event) for key, event in retracted.items()]))
    effects = Effects()
    for (tenant, _, _), event in retracted.items():
        effects.apply(tenant, event, calendars[tenant], -1)
    await write_effects(conn, effects, calendars)
    return len(retracted)


def _scopes(events: Sequence[tuple[str, Any]]) -> list[Scope]:
    return sorted({(tenant, scope) for tenant, event in events if (scope := scope_of(event)) is not None})


async def _resolve_cancels(
    conn: AsyncConnection, new: Sequence[Decoded], *, already: set[EventKey]
) -> dict[EventKey, Any]:
    """Admissions and discharges that stop counting now (docs/events.md): new ones a cancel names
    (stored, or in this batch — its cancels are stored first), and stored ones new cancels name; a
    cancelled admission names its stay's discharges too (those admitted at its time). They are marked
    retracted, like the target of a retraction; returned with their events (a discharge's stay row is
    kept, marked cancelled). `already`: those this batch retracted (their stay rows go with this batch's
    writes): not taken back twice."""
    facts: dict[tuple[Any, ...], list[Decoded]] = defaultdict(list)
    for d in new:
        for stopping in stopping_facts(d.event):
            facts[(d.origin.tenant, *stopping)].append(d)
    cancels = [(d.origin.tenant, *named) for d in new if (named := cancelled_by(d.event)) is not None]
    found: dict[EventKey, Any] = {}
    if facts:
        # The cancels of these facts' patients (a patient has few), matched here by what they name.
        patients = sorted({(tenant, patient) for tenant, patient, *_ in facts})
        rows = await conn.execute(_CANCELS_OF, columns_of(_PATIENT_COLUMNS, patients))
        for row in rows:
            for fact in facts.get((row.tenant, row.patient, row.encounter, row.fact, row.at), []):
                if fact.key not in already:
                    found[fact.key] = fact.event
    if cancels:
        named = as_table("c", _FACT_COLUMNS, sorted(set(cancels)))
        s = tables.stays.c
        rows = await conn.execute(
            select(s.tenant, s.source, s.id).join(
                named,
                and_(
                    s.tenant == named.c.tenant,
                    s.patient == named.c.patient,
                    s.encounter == named.c.encounter,
                    s.cancelled.is_(False),  # a discharge cancelled before is cancelled once
                    or_(
                        and_(s.type == named.c.fact, s.at == named.c.at),
                        and_(named.c.fact == ADMITTED, s.type == DISCHARGED, s.admitted_at == named.c.at),
                    ),
                ),
            )
        )
        stored = sorted({(r.tenant, r.source, r.id) for r in rows} - set(found) - already)
        if stored:
            found |= await _events_of(conn, stored)
    if found:
        marked = event_keys(sorted(found))
        await conn.execute(
            update(tables.events).where(on_event_key(tables.events, marked)).values(retracted=True)
        )
    return found


_PATIENT_COLUMNS = {"tenant": "text", "patient": "text"}
_CANCELS_OF = text(
    f"""
    SELECT c.tenant, c.patient, c.encounter, c.fact, c.at
    FROM {unnest(_PATIENT_COLUMNS)} JOIN cancellations c USING (tenant, patient)
    """
)
_FACT_COLUMNS = {
    "tenant": Text,
    "patient": Text,
    "encounter": Text,
    "fact": Text,
    "at": DateTime(timezone=True),
}


async def _events_of(conn: AsyncConnection, keys: Sequence[EventKey]) -> dict[EventKey, Any]:
    rows = await _event_rows(conn, keys, tables.events.c.payload)
    return {(r.tenant, r.source, r.id): validate_event(r.payload) for r in rows}


def _feed_slot(decoded: Decoded) -> FeedSlot | None:
    feed = feed_of(decoded.event.type)
    return None if feed is None else (decoded.origin.tenant, decoded.event.facility, feed)


async def _before_watermark(conn: AsyncConnection, fed: Sequence[tuple[Decoded, FeedSlot]]) -> dict[str, int]:
    """New events whose time is before their feed's watermark as stored before this batch, by feed."""
    if not fed:
        return {}
    d = tables.feed_declarations.c
    slots = as_table("f", {"tenant": Text, "facility": Text, "feed": Text}, sorted({s for _, s in fed}))
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
