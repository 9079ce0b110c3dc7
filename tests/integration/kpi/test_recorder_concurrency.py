"""Two engine instances recording at the same moment on one tenant: what they can race on is safe.

Each test holds the outbox (every batch that changes a cell writes its change notices there, last) so
that both batches reach the end of their transaction before either commits — the worst interleaving,
made certain instead of hoped for. Nothing serialises the two batches by tenant any more: the first
test shows a retraction and its event, recorded by two instances that cannot see each other, still
leave the event out; the second shows two instances touching one patient wait for each other on that
patient's scope lock, so the readmission is counted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from kpi_engine.adapters.recorder import PostgresRecorder
from kpi_engine.domain.calendar import TenantCalendar
from kpi_engine.domain.computation import compute_cells
from kpi_engine.domain.messages import Decoded, Message
from kpi_engine.handlers import decode
from tests.integration.kpi.conftest import stored_cells
from tests.integration.kpi.test_recorder import NOW, ORIGIN, TENANT
from tests.support.infrastructure import Infrastructure
from tests.support.waiting import wait_until
from tests.unit.kpi.builders import ev
from vr_shared.db import create_engine
from vr_shared.events import Event, encode_event, event_document
from vr_shared.events.catalogue import EventRetracted


def batch(partition: int, events: list[Event]) -> list[Decoded]:
    decoded = [
        decode(Message(partition, i, encode_event(ORIGIN, event_document(e)))) for i, e in enumerate(events)
    ]
    assert all(isinstance(d, Decoded) for d in decoded)
    return decoded  # type: ignore[return-value]


async def waiting_on_locks(engine: AsyncEngine, statement: str) -> int:
    async with engine.connect() as conn:
        return int(
            (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND pid <> pg_backend_pid() AND query LIKE :statement"
                    ),
                    {"statement": f"%{statement}%"},
                )
            ).scalar_one()
        )


async def both_held_at_the_end(
    kpi_schema: tuple[AsyncEngine, str], first: Awaitable[object], second: Awaitable[object], waits: int
) -> None:
    """Run two recordings (two instances: two engines) while the outbox is locked; release it once
    `waits` of their statements wait on a lock; both must then finish."""
    engine, _ = kpi_schema
    async with engine.connect() as holder:
        transaction = await holder.begin()
        await holder.execute(text("LOCK TABLE outbox IN EXCLUSIVE MODE"))
        tasks = [asyncio.ensure_future(first), asyncio.ensure_future(second)]

        async def both_waiting() -> bool:
            return await waiting_on_locks(engine, "INSERT INTO") >= waits

        await wait_until(both_waiting)
        await transaction.rollback()
        await asyncio.gather(*tasks)


async def test_a_retraction_and_its_event_recorded_at_once_by_two_instances_leave_the_event_out(
    kpi_schema: tuple[AsyncEngine, str], infrastructure: Infrastructure
) -> None:
    engine, schema = kpi_schema
    other = create_engine(infrastructure.database_url, schema=schema)  # another instance's connections
    claim = ev("claim.submitted", "2026-03-02T10:00:00-05:00", clean=True)
    kept = ev("claim.submitted", "2026-03-03T10:00:00-05:00", clean=False)
    retraction = ev("event.retracted", "2026-03-04T10:00:00-05:00", retracted_id=claim.id)
    assert isinstance(retraction, EventRetracted)
    first = PostgresRecorder(engine, schema).record(batch(0, [retraction, kept]), [], NOW)
    second = PostgresRecorder(other, schema).record(batch(1, [claim]), [], NOW)
    try:
        # Each batch checked the other's key before either committed: neither saw the other.
        await both_held_at_the_end(kpi_schema, first, second, waits=2)
    finally:
        await other.dispose()
    calendar = TenantCalendar.of(ORIGIN.timezone)
    assert await stored_cells(engine, TENANT) == compute_cells([kept], calendar)
    async with engine.connect() as conn:
        retracted = (
            await conn.execute(text("SELECT retracted FROM events WHERE id = :id"), {"id": claim.id})
        ).scalar_one()
    assert retracted is True


async def test_two_instances_on_one_patient_wait_for_each_other_and_count_the_readmission(
    kpi_schema: tuple[AsyncEngine, str], infrastructure: Infrastructure
) -> None:
    engine, schema = kpi_schema
    other = create_engine(infrastructure.database_url, schema=schema)
    patient = {"patient_ref": "p-race", "encounter_class": "inpatient"}
    discharge = ev(
        "encounter.discharged",
        "2026-03-05T10:00:00-05:00",
        encounter_ref="e1",
        admitted_at="2026-03-01T10:00:00-05:00",
        disposition="home",
        **patient,
    )
    readmission = ev("encounter.admitted", "2026-03-20T10:00:00-05:00", encounter_ref="e2", **patient)
    first = PostgresRecorder(engine, schema).record(batch(0, [discharge]), [], NOW)
    claim = ev("claim.submitted", "2026-03-20T11:00:00-05:00", clean=True)  # so it reaches the outbox
    second = PostgresRecorder(other, schema).record(batch(1, [readmission, claim]), [], NOW)
    try:
        # One waits on the outbox, the other on the patient's scope lock (it must not read the stays yet).
        await both_held_at_the_end(kpi_schema, first, second, waits=2)
    finally:
        await other.dispose()
    cells = await stored_cells(engine, TENANT)
    assert cells == compute_cells([discharge, readmission, claim], TenantCalendar.of(ORIGIN.timezone))
    readmissions = [cell for key, cell in cells.items() if key.kpi == "readmission_rate_30d"]
    assert [(c.numerator, c.denominator) for c in readmissions] == [(1, 1)]
