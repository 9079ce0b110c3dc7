"""Settlement on a schema of a test's own, migrated, with the real store on it — for tests that drive the
service and its background work step by step (no consumer or watch of an app runs beside them). Beside
a stack, it reads that stack's real KPI engine over HTTP, through a reader the test can hold up."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from settlement.adapters.kpi_client import HttpKpiReader
from settlement.adapters.migrate import migrate
from settlement.adapters.repository import PostgresSettlementStore
from settlement.domain.contract import Contract
from settlement.domain.sources import KpiReading, KpiRequest
from settlement.entrypoints.updates import KpiUpdatesConsumer
from settlement.handlers import SettlementService
from tests.integration.settlement.conftest import SettlementStack
from tests.support.identity import SETTLEMENT_PRIVATE_KEY
from tests.support.infrastructure import Infrastructure
from vr_shared.db import create_engine
from vr_shared.identity import IdentitySigner, issuer


@asynccontextmanager
async def migrated_store(infra: Infrastructure) -> AsyncIterator[tuple[AsyncEngine, PostgresSettlementStore]]:
    schema = f"settlement_own_{uuid.uuid4().hex[:10]}"
    engine = create_engine(infra.database_url, schema=schema, pool_size=5)
    await migrate(engine, schema)
    try:
        yield engine, PostgresSettlementStore(engine)
    finally:
        await engine.dispose()
        admin = create_engine(infra.database_url)
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await admin.dispose()


class HookedReader:
    """The real KPI reader, with hooks after a read: `hold_next_read` stops the next read once it has
    its answer, until `release`; `delay_next_read` holds it a while (a randomized test widens the window
    between finalize's read and its insert so that changes land in it)."""

    def __init__(self, inner: HttpKpiReader) -> None:
        self.inner = inner
        self.read_done, self._go = asyncio.Event(), asyncio.Event()
        self._hold = False
        self._delay_s = 0.0

    def hold_next_read(self) -> None:
        self._hold, self.read_done, self._go = True, asyncio.Event(), asyncio.Event()

    def release(self) -> None:
        self._go.set()

    def delay_next_read(self, seconds: float) -> None:
        self._delay_s = seconds

    async def read(self, contract: Contract, requests: list[KpiRequest]) -> dict[KpiRequest, KpiReading]:
        answer = await self.inner.read(contract, requests)
        if self._hold:
            self._hold = False
            self.read_done.set()
            await self._go.wait()
        delay_s, self._delay_s = self._delay_s, 0.0
        await asyncio.sleep(delay_s)
        return answer


@dataclass
class Kit:
    stack: SettlementStack
    engine: AsyncEngine
    store: PostgresSettlementStore
    reader: HookedReader
    service: SettlementService
    notices: KpiUpdatesConsumer  # its `reconcile` is what the consumer does with a batch of notices


@asynccontextmanager
async def settlement_beside(stack: SettlementStack, infra: Infrastructure) -> AsyncIterator[Kit]:
    signer = IdentitySigner(SETTLEMENT_PRIVATE_KEY, issuer=issuer("settlement"), ttl_seconds=60)
    async with (
        migrated_store(infra) as (engine, store),
        httpx.AsyncClient(base_url=stack.settings.kpi_engine_url, timeout=10) as http,
    ):
        reader = HookedReader(HttpKpiReader(http, signer))
        service = SettlementService(store, reader)
        notices = KpiUpdatesConsumer(None, store, service)  # no broker: `reconcile` is called directly
        yield Kit(stack, engine, store, reader, service, notices)
