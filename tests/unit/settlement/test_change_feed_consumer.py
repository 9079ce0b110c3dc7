"""The change-feed consumer waits out a database or KPI engine that is away — with growing pauses — and
commits a batch's offsets only once its reconciliation is done; it never stops on such an error."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import orjson
from sqlalchemy.exc import OperationalError

from settlement.adapters.kpi_client import KpiEngineUnavailable
from settlement.entrypoints.updates import KpiUpdatesConsumer
from tests.unit.settlement.builders import reading
from tests.unit.settlement.fakes import FakeKpiReader, FakeSettlementStore
from tests.unit.settlement.test_settlement_service import BILLING, _service, _stored

PARTITION = ("vr.kpi-updates.v1", 0)
NOTICE = {
    "tenant": "mission-health",
    "facility": "asheville-main",
    "kpi": "cpoe_rate",
    "bucket": "2026-02-10",
}


@dataclass
class Record:
    value: bytes
    offset: int


@dataclass
class FakeConsumer:
    """Hands out its batches once, then nothing; remembers what was committed."""

    batches: list[dict[Any, list[Record]]]
    committed: list[dict[Any, int]] = field(default_factory=list)
    drained: asyncio.Event = field(default_factory=asyncio.Event)

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[Any, list[Record]]:
        if self.batches:
            return self.batches.pop(0)
        self.drained.set()
        await asyncio.sleep(timeout_ms / 1000)
        return {}

    async def commit(self, offsets: dict[Any, int]) -> None:
        self.committed.append(offsets)


@dataclass
class FlakyStore(FakeSettlementStore):
    """The settlement store, whose database fails the first lookups of each notice."""

    failures: list[Exception] = field(default_factory=list)

    async def finals_touched_by(
        self, tenant: str, facility: str, kpi: str, day: date
    ) -> list[tuple[str, str]]:
        if self.failures:
            raise self.failures.pop(0)
        return [key for key in self.finals if key == ("test-contract", "2026-Q1")]


async def test_a_database_or_engine_away_is_waited_out_and_the_change_still_booked() -> None:
    store = FlakyStore()
    kpis = FakeKpiReader({"cpoe_rate": reading("0.85", "85", "100")})
    service = _service(kpis, store)
    await service.finalize(_stored(), "2026-Q1", None, BILLING)
    kpis.by_kpi["cpoe_rate"] = reading("0.90", "90", "100")  # a late order, then its change notice
    store.failures = [
        OperationalError("SELECT", {}, ConnectionRefusedError("the database is restarting")),
        OperationalError("SELECT", {}, ConnectionResetError("connection reset")),
        KpiEngineUnavailable("KPI engine answered 503"),
    ]
    consumer = FakeConsumer([{PARTITION: [Record(orjson.dumps(NOTICE), 41)]}])
    updates = KpiUpdatesConsumer(consumer, store, service, retry_backoff_s=0.001)
    running = asyncio.create_task(updates.run())

    await asyncio.wait_for(consumer.drained.wait(), timeout=10)

    assert not running.done()  # still consuming
    assert consumer.committed == [{PARTITION: 42}]  # after the batch's reconciliation, not before
    (adjustment,) = await store.adjustments("test-contract", "2026-Q1")
    assert str(adjustment.total_delta) == "50000.00"
    running.cancel()
