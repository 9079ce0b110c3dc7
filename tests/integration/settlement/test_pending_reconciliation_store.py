"""What PostgreSQL keeps so that no change to a final period is lost after a commit, and no period state
is announced after its finalize (docs/settlement.md, "Finalize" and "Adjustments"; docs/webhooks.md).

- An input put on a final period leaves it pending a reconciliation in the put's own transaction.
- A recheck is marked done only if no request came after it read the statement.
- Migration 0004 leaves pending every final whose basis holds a provisional reading.
- A period state computed before a finalize is not written after it (`statement.ready` never follows
  `statement.finalized`), whichever of the two takes the period first.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from settlement.adapters.migrate import MIGRATIONS
from settlement.adapters.repository import PostgresSettlementStore
from settlement.domain import notifications
from settlement.domain.stored import StoredContract
from settlement.handlers import SettlementService
from tests.integration.gateway.conftest import drop_schemas
from tests.integration.settlement.own_schema import migrated_store
from tests.support.infrastructure import Infrastructure
from tests.unit.settlement.builders import contract, reading
from tests.unit.settlement.fakes import FakeKpiReader
from tests.unit.settlement.test_settlement_service import AFTER_Q1, BILLING, INCENTIVE
from vr_shared.db import create_engine
from vr_shared.identity import Identity
from vr_shared.migrations import alembic_config
from vr_shared.roles import Role

ADMIN = Identity(tenant="mission-health", role=Role.TENANT_ADMIN, key_id="key-admin")
PERIOD = "2026-Q1"


@pytest.fixture
async def own(infrastructure: Infrastructure) -> AsyncIterator[tuple[AsyncEngine, PostgresSettlementStore]]:
    async with migrated_store(infrastructure) as made:
        yield made


async def _final(store: PostgresSettlementStore, with_input: bool = False) -> tuple[StoredContract, str]:
    """A contract of its own, stored, its Q1 finalized on a CPOE rate halfway to target."""
    contract_id = f"pending-{uuid.uuid4().hex[:8]}"
    term = {**INCENTIVE, "max_reward": {"input": "reward"}} if with_input else INCENTIVE
    stored = await store.create_contract(contract(term, id=contract_id), ADMIN)
    service = SettlementService(
        store, FakeKpiReader({"cpoe_rate": reading("0.85", "85", "100")}), lambda: AFTER_Q1
    )
    if with_input:
        await service.put_inputs(contract_id, PERIOD, {"reward": Decimal("100000")}, ADMIN)
    await service.finalize(stored, PERIOD, None, BILLING)
    return stored, contract_id


async def test_an_input_put_on_a_final_period_leaves_it_pending_in_the_same_transaction(
    own: tuple[AsyncEngine, PostgresSettlementStore],
) -> None:
    _, store = own
    _, contract_id = await _final(store, with_input=True)
    final = await store.final(contract_id, PERIOD)
    assert final is not None and final.rechecked
    await store.put_inputs(contract_id, PERIOD, {"reward": Decimal("200000")}, ADMIN)
    after = await store.final(contract_id, PERIOD)
    assert after is not None and not after.rechecked
    assert after.recheck_requests == final.recheck_requests + 1
    assert after.recheck_reason == "period inputs changed after finalization"
    assert await store.finals_to_recheck() == [(contract_id, PERIOD)]


async def test_a_recheck_is_done_only_if_no_request_came_after_it_read_the_statement(
    own: tuple[AsyncEngine, PostgresSettlementStore],
) -> None:
    _, store = own
    _, contract_id = await _final(store)
    await store.ask_recheck(contract_id, PERIOD, "late KPI data: cpoe_rate")
    read = await store.final(contract_id, PERIOD)  # a recheck reads it, then the data…
    assert read is not None and not read.rechecked
    await store.ask_recheck(contract_id, PERIOD, "period inputs changed after finalization")  # …a put lands
    assert not await store.mark_rechecked(contract_id, PERIOD, read.recheck_requests)
    assert await store.finals_to_recheck() == [(contract_id, PERIOD)]
    again = await store.final(contract_id, PERIOD)
    assert again is not None and await store.mark_rechecked(contract_id, PERIOD, again.recheck_requests)
    assert await store.finals_to_recheck() == []


async def test_a_period_state_computed_before_a_finalize_is_not_written_after_it(
    own: tuple[AsyncEngine, PostgresSettlementStore],
) -> None:
    """The period watch computed Q1 `ready`; a finalize commits before the watch writes the state."""
    engine, store = own
    contract_id = f"pending-{uuid.uuid4().hex[:8]}"
    stored = await store.create_contract(contract(INCENTIVE, id=contract_id), ADMIN)
    service = SettlementService(
        store, FakeKpiReader({"cpoe_rate": reading("0.85", "85", "100")}), lambda: AFTER_Q1
    )
    current = await service.statement(stored, PERIOD)
    state = notifications.statement_state(current, ended=True)
    assert state == "ready"
    await service.finalize(stored, PERIOD, None, BILLING)

    written = await store.note_period_state(
        contract_id, PERIOD, state, notifications.period_state(stored.contract, current, state)
    )

    assert not written
    assert await _event_types(engine, contract_id) == ["contract.updated", "statement.finalized"]


async def test_a_finalize_and_a_period_state_taking_the_period_at_once_never_announce_ready_after_final(
    own: tuple[AsyncEngine, PostgresSettlementStore],
) -> None:
    """Both wait for the period (a third connection holds it), then go in the order PostgreSQL grants
    it: whichever that is, no `statement.ready` follows `statement.finalized` in the feed."""
    engine, store = own
    contract_id = f"pending-{uuid.uuid4().hex[:8]}"
    stored = await store.create_contract(contract(INCENTIVE, id=contract_id), ADMIN)
    service = SettlementService(
        store, FakeKpiReader({"cpoe_rate": reading("0.85", "85", "100")}), lambda: AFTER_Q1
    )
    current = await service.statement(stored, PERIOD)
    ready = notifications.period_state(stored.contract, current, "ready")
    async with engine.connect() as holder:
        await holder.begin()
        key = f"period:{contract_id}:{PERIOD}"  # the period's lock, as the store takes it
        await holder.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key})
        finalizing = asyncio.create_task(service.finalize(stored, PERIOD, None, BILLING))
        await _waiting_for_the_period(engine, key, 1)
        noting = asyncio.create_task(store.note_period_state(contract_id, PERIOD, "ready", ready))
        await _waiting_for_the_period(engine, key, 2)
        await holder.rollback()
    await asyncio.gather(finalizing, noting)
    types = await _event_types(engine, contract_id)
    assert "statement.finalized" in types
    assert "statement.ready" not in types[types.index("statement.finalized") :]


async def test_migration_0004_leaves_pending_every_final_resting_on_a_provisional_reading(
    infrastructure: Infrastructure,
) -> None:
    schema = f"settlement_m4_{uuid.uuid4().hex[:10]}"
    engine = create_engine(infrastructure.database_url, schema=schema)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            await conn.run_sync(
                lambda sync: command.upgrade(alembic_config(sync, schema, MIGRATIONS), "0003")
            )
            for contract_id, status in (("old-provisional", "provisional"), ("old-mature", "mature")):
                await conn.execute(_OLD_FINAL, {"id": contract_id, "basis": _basis(status)})
            await conn.run_sync(
                lambda sync: command.upgrade(alembic_config(sync, schema, MIGRATIONS), "head")
            )
        store = PostgresSettlementStore(engine)
        assert await store.finals_to_recheck() == [("old-provisional", PERIOD)]
        pending, done = await store.final("old-provisional", PERIOD), await store.final("old-mature", PERIOD)
        assert pending is not None and done is not None and done.rechecked and done.recheck_reason is None
        assert pending.recheck_reason == "data changed after finalization, on readings that were provisional"
    finally:
        await engine.dispose()
        await drop_schemas(infrastructure, schema)


_OLD_FINAL = text(
    """INSERT INTO final_statements (contract_id, period, contract_version, statement, sha256, basis,
        health_system, facilities, kpis, period_start, period_end, finalized_by)
    VALUES (:id, '2026-Q1', 1, '{}', 'x', CAST(:basis AS jsonb), 'mission-health', '{asheville-main}',
        '{readmission_rate_30d}', '2026-01-01', '2026-04-01', 'key-billing')"""
)


def _basis(status: str) -> str:
    readings = [
        {"kpi": "cpoe_rate", "status": "mature"},
        {"kpi": "readmission_rate_30d", "status": status, "value": "0.08"},
    ]
    return json.dumps({"contract": {}, "inputs": {}, "kpi_readings": readings})


async def _event_types(engine: AsyncEngine, contract_id: str) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT type FROM settlement_events WHERE contract_id = :c ORDER BY xid, seq"),
            {"c": contract_id},
        )
        return [row.type for row in rows]


_WAITING = text(
    """SELECT count(*) FROM pg_locks
    WHERE locktype = 'advisory' AND objsubid = 1 AND NOT granted
        AND ((classid::bigint << 32) | objid::bigint) = hashtextextended(:key, 0)"""
)


async def _waiting_for_the_period(engine: AsyncEngine, key: str, count: int) -> None:
    """Until `count` transactions wait for the period's advisory lock (a bigint key: its high and low
    halves are `classid` and `objid`)."""
    for _ in range(500):
        async with engine.connect() as conn:
            if await conn.scalar(_WAITING, {"key": key}) >= count:
                return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} transactions never waited for the period")
