"""Writing a batch's effects (kpi_engine.domain.effects) in bulk: scope locks, derived rows, feed
activity, recomputation of the non-additive cells, and the cells with their change notices.

Lock order (docs/decisions/0005-exactly-once-effect.md): the events' own rows first (the recorder's
inserts and retraction marks), then scope-lock rows, then derived rows (keyed by event: no two writers),
then additive cells, then recomputed cells, then feed activity — each in key order. Every transaction
takes them in this order, so two engine instances wait for each other but never deadlock.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Date, DateTime, Table, Text, and_, delete, select, text, update
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncConnection

from kpi_engine.adapters import tables
from kpi_engine.adapters.sql import as_table, columns_of, event_keys, on_event_key, unnest
from kpi_engine.domain.calendar import TenantCalendar
from kpi_engine.domain.cells import Cell, CellKey
from kpi_engine.domain.computation import DAYS_IN_AR
from kpi_engine.domain.effects import (
    AR_SNAPSHOTS,
    FEED_DECLARATIONS,
    OUTAGES,
    STAYS,
    Effects,
    IndexChanges,
    Scope,
    StoredStay,
    TenantCell,
    cell_order,
    readmission_changes,
    standing_of,
    stay_changes,
    stays_as_facts,
    stays_now,
)
from kpi_engine.domain.readmissions import IndexOutcome, standing_outcomes
from kpi_engine.domain.uptime import KPI as UPTIME
from kpi_engine.domain.uptime import Outage, outage_minutes_by_day

DERIVED_TABLES: dict[str, Table] = {
    STAYS: tables.stays,
    OUTAGES: tables.outages,
    AR_SNAPSHOTS: tables.ar_snapshots,
    FEED_DECLARATIONS: tables.feed_declarations,
}

_SCOPE_COLUMNS = {"tenant": "text", "scope": "text"}
_LOCK_SCOPES = text(
    f"""
    INSERT INTO scope_locks (tenant, scope)
    SELECT tenant, scope FROM {unnest(_SCOPE_COLUMNS)} ORDER BY tenant, scope
    ON CONFLICT (tenant, scope) DO UPDATE SET batches = scope_locks.batches + 1
    """
)


async def lock_scopes(conn: AsyncConnection, scopes: Sequence[Scope]) -> None:
    """Lock the rows of these scopes (created on first use) until the transaction ends, in key order.
    A second instance recomputing one of them waits here, then reads what the first committed."""
    if scopes:
        await conn.execute(_LOCK_SCOPES, columns_of(_SCOPE_COLUMNS, sorted(set(scopes))))


async def write_effects(conn: AsyncConnection, effects: Effects, calendars: dict[str, TenantCalendar]) -> int:
    """Everything the effects decide, once their scopes are locked. Returns how many cells changed."""
    stored_stays = await _stays_by_patient(conn, sorted(effects.patients))  # before this batch's rows
    known_before = await _known_systems(conn, effects)
    await _write_rows(conn, effects)
    absolute: dict[TenantCell, Cell | None] = {}
    await _recompute_uptime(conn, effects, calendars, absolute)
    await _recompute_ar(conn, effects, absolute)
    await _recompute_patients(conn, stored_stays, calendars, effects)
    changed = await _write_cells(conn, effects.deltas, absolute)
    await _announce_systems_known(conn, known_before, await _known_systems(conn, effects))
    await _write_activity(conn, effects)
    return changed


async def _write_rows(conn: AsyncConnection, effects: Effects) -> None:
    """One statement per table and kind: the inputs the non-additive KPIs are recomputed from."""
    for kind, removed in effects.removed.items():
        if removed:
            table = DERIVED_TABLES[kind]
            keys = event_keys(sorted(removed))
            await conn.execute(delete(table).where(on_event_key(table, keys)))
    if effects.cancelled_stays:
        keys = event_keys(sorted(effects.cancelled_stays))
        await conn.execute(
            update(tables.stays).where(on_event_key(tables.stays, keys)).values(cancelled=True)
        )
    for kind, rows in effects.added.items():
        # Rows of events recorded for the first time: their keys are new, so COPY cannot conflict.
        await _copy(conn, DERIVED_TABLES[kind].name, rows)


async def _copy(conn: AsyncConnection, table: str, rows: list[dict[str, Any]]) -> None:
    if rows:
        columns = list(rows[0])
        driver = (await conn.get_raw_connection()).driver_connection
        await driver.copy_records_to_table(  # type: ignore[union-attr]
            table, columns=columns, records=[tuple(row[c] for c in columns) for row in rows]
        )


_ACTIVITY_COLUMNS = {
    "tenant": "text",
    "facility": "text",
    "feed": "text",
    "day": "date",
    "events": "bigint",
    "newest_event_time": "timestamptz",
}
_ADD_ACTIVITY = text(
    f"""
    INSERT INTO feed_activity ({", ".join(_ACTIVITY_COLUMNS)})
    SELECT * FROM {unnest(_ACTIVITY_COLUMNS)}
    ON CONFLICT (tenant, facility, feed, day) DO UPDATE SET
        events = feed_activity.events + excluded.events,
        newest_event_time = GREATEST(feed_activity.newest_event_time, excluded.newest_event_time)
    """
)


async def _write_activity(conn: AsyncConnection, effects: Effects) -> None:
    """Add the batch's deliveries per facility, feed and day (key order)."""
    if effects.activity:
        rows = [(*key, count, newest) for key, (count, newest) in sorted(effects.activity.items())]
        await conn.execute(_ADD_ACTIVITY, columns_of(_ACTIVITY_COLUMNS, rows))


async def _recompute_uptime(
    conn: AsyncConnection,
    effects: Effects,
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
        since, until = calendar.day_start(min(days)), calendar.day_start(max(days) + timedelta(days=1))
        spans.append((tenant, facility, system, since, until))
    o = tables.outages.c
    when = DateTime(timezone=True)
    span = as_table(
        "s", {"tenant": Text, "facility": Text, "system": Text, "since": when, "until": when}, spans
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
    conn: AsyncConnection, effects: Effects, absolute: dict[TenantCell, Cell | None]
) -> None:
    """Each touched day's latest A/R snapshot, in one query."""
    if not effects.ar_days:
        return
    a = tables.ar_snapshots.c
    days = as_table("d", {"tenant": Text, "facility": Text, "day": Date}, sorted(effects.ar_days))
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


async def _stays_by_patient(
    conn: AsyncConnection, patients: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], list[StoredStay]]:
    stays: dict[tuple[str, str], list[StoredStay]] = {patient: [] for patient in patients}
    if patients:
        for tenant, stay in await stays_of(conn, patients):
            stays[(tenant, stay.patient)].append(stay)
    return stays


async def _recompute_patients(
    conn: AsyncConnection,
    stored: dict[tuple[str, str], list[StoredStay]],
    calendars: dict[str, TenantCalendar],
    effects: Effects,
) -> None:
    """Re-derive the touched patients' stays as they were (`stored`, read before this batch's rows were
    written) and are now: each stay's standing discharge that changed becomes length-of-stay and
    patient-day deltas, every changed index outcome readmission deltas."""
    patients = sorted(stored)
    if not patients:
        return
    now = stays_now(stored, effects)
    before = await _index_before(conn, patients)
    changes = IndexChanges()
    for tenant, patient in patients:
        # The standing discharges serve both length of stay and readmissions.
        was = standing_of(stored[(tenant, patient)])
        admissions, standing = stays_as_facts(now.get((tenant, patient), []))
        stay_changes(tenant, was, standing, calendars[tenant], effects)
        outcomes = standing_outcomes(standing, admissions, calendars[tenant])
        readmission_changes(tenant, patient, before[(tenant, patient)], outcomes, effects, changes)
    index = tables.readmission_index
    if changes.removed:
        await conn.execute(delete(index).where(on_event_key(index, event_keys(sorted(changes.removed)))))
    await _copy(conn, index.name, changes.added)  # their keys were deleted above if they were there


_STAY_COLUMNS = (
    "source",
    "id",
    "type",
    "encounter",
    "patient",
    "facility",
    "at",
    "encounter_class",
    "planned",
    "disposition",
    "admitted_at",
    "received",
    "cancelled",
)


async def stays_of(
    conn: AsyncConnection, patients: Sequence[tuple[str, str]]
) -> list[tuple[str, StoredStay]]:
    """The stays (admissions and discharges, cancelled discharges included) of these (tenant, patient)
    pairs, with their tenant."""
    touched = as_table("p", {"tenant": Text, "patient": Text}, patients)
    s = tables.stays.c
    rows = await conn.execute(
        select(s.tenant, *(s[name] for name in _STAY_COLUMNS)).join(
            touched, and_(s.tenant == touched.c.tenant, s.patient == touched.c.patient)
        )
    )
    return [(row[0], StoredStay(*row[1:])) for row in rows]


async def _index_before(
    conn: AsyncConnection, patients: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], dict[tuple[str, str], IndexOutcome]]:
    """The touched patients' index stays as recorded before this batch."""
    touched = as_table("p", {"tenant": Text, "patient": Text}, patients)
    index = tables.readmission_index
    rows = await conn.execute(
        select(index).join(
            touched, and_(index.c.tenant == touched.c.tenant, index.c.patient == touched.c.patient)
        )
    )
    before: dict[tuple[str, str], dict[tuple[str, str], IndexOutcome]] = defaultdict(dict)
    for row in rows:
        before[(row.tenant, row.patient)][(row.source, row.id)] = IndexOutcome(
            row.facility, row.day, row.readmitted
        )
    return before


async def _write_cells(
    conn: AsyncConnection, deltas: dict[TenantCell, Cell], absolute: dict[TenantCell, Cell | None]
) -> int:
    """Deltas are added, absolute values replace, cells that no longer exist are deleted; each changed
    cell queues its change notice in the same statement. Additive and recomputed cells are of different
    KPIs, and recomputed ones are written under their scope's lock: key order within each statement is
    the global order. Returns how many cells changed."""
    additions = [_cell_values(k, d) for k, d in sorted(deltas.items(), key=cell_order) if not d.is_empty()]
    replacements = [_cell_values(k, c) for k, c in sorted(absolute.items(), key=cell_order) if c is not None]
    gone = [k for k, c in sorted(absolute.items(), key=cell_order) if c is None]
    changed = 0
    for rows, statement in ((additions, _ADD_CELLS), (replacements, _REPLACE_CELLS)):
        if rows:
            result = await conn.execute(statement, columns_of(_CELL_COLUMNS, rows))
            emptied = [tuple(row) for row in result]  # a retraction took these cells back to nothing
            changed += len(rows)
            if emptied:
                await conn.execute(_DELETE_EMPTY_CELLS, columns_of(_CELL_KEY_COLUMNS, emptied))
    if gone:
        keys = [(tenant, k.kpi, k.facility, k.day, k.dimension) for tenant, k in gone]
        result = await conn.execute(_DELETE_CELLS, columns_of(_CELL_KEY_COLUMNS, keys))
        changed += result.scalar_one()
    return changed


_CELL_KEY_COLUMNS = {"tenant": "text", "kpi": "text", "facility": "text", "day": "date", "dimension": "text"}
_CELL_COLUMNS = {
    **_CELL_KEY_COLUMNS,
    "numerator": "numeric",
    "denominator": "numeric",
    "sample_size": "bigint",
}
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
            SELECT * FROM {unnest(_CELL_COLUMNS)}
            ON CONFLICT ({_ORDER}) DO UPDATE SET {values}
            RETURNING *
        ), queued AS (
            INSERT INTO outbox (payload) SELECT {_NOTICE} FROM written ORDER BY {_ORDER}
        )
        SELECT {_ORDER} FROM written WHERE numerator = 0 AND denominator = 0 AND sample_size = 0
        """
    )


_ADD_CELLS = _upsert_cells("cells.{name} + excluded.{name}")
_REPLACE_CELLS = _upsert_cells("excluded.{name}")
_DELETE_EMPTY_CELLS = text(f"DELETE FROM cells c USING {unnest(_CELL_KEY_COLUMNS)} WHERE {_KEY_MATCH}")
_DELETE_CELLS = text(
    f"""
    WITH deleted AS (
        DELETE FROM cells c USING {unnest(_CELL_KEY_COLUMNS)} WHERE {_KEY_MATCH} RETURNING c.*
    ), queued AS (
        INSERT INTO outbox (payload)
        SELECT jsonb_build_object('kpi', kpi, 'tenant', tenant, 'facility', facility, 'bucket', day::text,
            'dimension', dimension, 'numerator', '0', 'denominator', '0', 'sample_size', 0)
        FROM deleted ORDER BY {_ORDER}
    )
    SELECT count(*) FROM deleted
    """
)


def _cell_values(key: TenantCell, cell: Cell) -> tuple[Any, ...]:
    tenant, k = key
    return (tenant, k.kpi, k.facility, k.day, k.dimension, cell.numerator, cell.denominator, cell.sample_size)


async def _known_systems(conn: AsyncConnection, effects: Effects) -> set[tuple[str, str, str]]:
    """Which of the touched (tenant, facility, system) pairs have a standing outage: the systems a
    facility's uptime read without a system counts (docs/kpis.md, "Uptime")."""
    if not effects.uptime_days:
        return set()
    o = tables.outages.c
    pairs = as_table("p", {"tenant": Text, "facility": Text, "system": Text}, sorted(effects.uptime_days))
    rows = await conn.execute(
        select(o.tenant, o.facility, o.system)
        .distinct()
        .join(
            pairs,
            and_(o.tenant == pairs.c.tenant, o.facility == pairs.c.facility, o.system == pairs.c.system),
        )
    )
    return {(r.tenant, r.facility, r.system) for r in rows}


_ANNOUNCE_OTHER_SYSTEMS = text(
    f"""INSERT INTO outbox (payload)
    SELECT {_NOTICE} FROM cells
    WHERE tenant = :tenant AND kpi = :kpi AND facility = :facility AND dimension <> :system
    ORDER BY {_ORDER}"""
)


# The tenant's other uptime days, where the facility has no uptime cell: its cell of the system is
# empty there, and the notice says so (as a deleted cell's does); settlement reads only whose day it is.
_ANNOUNCE_TENANT_DAYS = text(
    """INSERT INTO outbox (payload)
    SELECT jsonb_build_object('kpi', CAST(:kpi AS text), 'tenant', CAST(:tenant AS text),
        'facility', CAST(:facility AS text), 'bucket', d.day::text, 'dimension', CAST(:system AS text),
        'numerator', '0', 'denominator', '0', 'sample_size', 0)
    FROM (SELECT DISTINCT day FROM cells WHERE tenant = :tenant AND kpi = :kpi) d
    WHERE NOT EXISTS (
        SELECT FROM cells c
        WHERE c.tenant = :tenant AND c.kpi = :kpi AND c.facility = :facility AND c.day = d.day
    )
    ORDER BY d.day"""
)


async def _announce_systems_known(
    conn: AsyncConnection, before: set[tuple[str, str, str]], after: set[tuple[str, str, str]]
) -> None:
    """A system that becomes known to a facility (its first outage) or stops being known (its last one
    retracted) changes the uptime without a system of every statement over that facility, in every
    bucket where any system of any facility of the tenant was down — buckets this batch did not touch.
    Settlement finds the final statements a notice touches by the facility it names, so the facility
    whose systems changed is named on each such day: its other systems' cells are announced again
    (unchanged), and on the days it has no uptime cell, an empty one of the system. The system's own days
    are announced as written."""
    for tenant, facility, system in sorted(before ^ after):
        named = {"tenant": tenant, "kpi": UPTIME, "facility": facility, "system": system}
        await conn.execute(_ANNOUNCE_OTHER_SYSTEMS, named)
        await conn.execute(_ANNOUNCE_TENANT_DAYS, named)
