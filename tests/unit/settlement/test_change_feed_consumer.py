"""The change-feed consumer waits out a database or KPI engine that is away — with growing pauses — and
commits a batch's offsets only once its reconciliation is done; it never stops on such an error."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import orjson
import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, ProgrammingError

from settlement import metrics
from settlement.adapters.failures import can_pass
from settlement.adapters.kpi_client import KpiEngineRefused, KpiEngineUnavailable
from settlement.domain.contract import Contract
from settlement.domain.sources import KpiReading, KpiRequest
from settlement.domain.stored import StoredContract
from settlement.entrypoints.updates import KpiUpdatesConsumer
from tests.unit.settlement.builders import contract, reading
from tests.unit.settlement.fakes import FakeKpiReader, FakeSettlementStore
from tests.unit.settlement.test_settlement_service import AFTER_Q1, BILLING, INCENTIVE, _service, _stored

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


class _DriverError(Exception):
    """A driver error as asyncpg raises it: its SQLSTATE on `sqlstate`."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"SQLSTATE {sqlstate}")
        self.sqlstate = sqlstate


def _with_sqlstate(sqlstate: str) -> Exception:
    return _DriverError(sqlstate)


@dataclass
class RefusingReader(FakeKpiReader):
    """The KPI engine refuses every read of one contract (a 4xx: the same answer each time)."""

    refused_contract: str = "test-contract"

    async def read(self, contract: Contract, requests: list[KpiRequest]) -> dict[KpiRequest, KpiReading]:
        if contract.id == self.refused_contract:
            raise KpiEngineRefused("KPI engine answered 422: $.readings[0].end: beyond the range bound")
        return await super().read(contract, requests)


@dataclass
class TwoFinalsStore(FakeSettlementStore):
    async def finals_touched_by(
        self, tenant: str, facility: str, kpi: str, day: date
    ) -> list[tuple[str, str]]:
        return sorted(self.finals)


@pytest.mark.parametrize(
    "failure",
    [
        KpiEngineRefused("KPI engine answered 401: token refused"),
        IntegrityError("INSERT", {}, Exception("duplicate key value violates unique constraint")),
        ProgrammingError("SELECT", {}, Exception("column does not exist")),
    ],
    ids=["engine-refuses", "integrity-error", "programming-error"],
)
async def test_a_failure_that_cannot_pass_leaves_that_final_pending_and_the_others_are_reconciled(
    failure: Exception,
) -> None:
    """Retried in a loop, such a failure held back every reconciliation with `/healthz` green. Now the
    final it hits is left pending (for the period watch) and counted, the others are booked, the offsets
    committed and the consumer goes on."""
    store = TwoFinalsStore()
    kpis = RefusingReader({"cpoe_rate": reading("0.85", "85", "100")}, refused_contract="nobody")
    service = _service(kpis, store)
    other = StoredContract(contract(INCENTIVE, id="other-contract"), 1, AFTER_Q1, AFTER_Q1)
    await service.finalize(_stored(), "2026-Q1", None, BILLING)
    await service.finalize(other, "2026-Q1", None, BILLING)
    kpis.by_kpi["cpoe_rate"] = reading("0.90", "90", "100")
    kpis.refused_contract = "test-contract"
    if not isinstance(failure, KpiEngineRefused):
        kpis.refused_contract = "nobody"
        store.adjustments = _failing_for("test-contract", failure, store.adjustments)  # type: ignore[method-assign]
    failures_before = _failures("change_feed")
    consumer = FakeConsumer([{PARTITION: [Record(orjson.dumps(NOTICE), 41)]}])
    updates = KpiUpdatesConsumer(consumer, store, service, retry_backoff_s=0.001)
    running = asyncio.create_task(updates.run())

    await asyncio.wait_for(consumer.drained.wait(), timeout=10)

    assert not running.done() and consumer.committed == [{PARTITION: 42}]
    assert [a.total_delta for a in await store.adjustments("other-contract", "2026-Q1")] == [
        Decimal("50000.00")
    ]
    pending = store.finals[("test-contract", "2026-Q1")]
    assert not pending.rechecked and pending.recheck_reason == "late KPI data: cpoe_rate"
    assert store.finals[("other-contract", "2026-Q1")].rechecked
    assert _failures("change_feed") == failures_before + 1
    running.cancel()


def _failing_for(contract_id: str, failure: Exception, inner: Any) -> Any:
    async def adjustments(c: str, period: str) -> Any:
        if c == contract_id:
            raise failure
        return await inner(c, period)

    return adjustments


def _failures(source: str) -> float:
    return metrics.RECONCILIATION_FAILURES.labels(source)._value.get()  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("error", "passes"),
    [
        (OperationalError("SELECT", {}, ConnectionRefusedError("connection refused")), True),
        (DBAPIError("SELECT", {}, _with_sqlstate("57P01")), True),  # admin shutdown
        (DBAPIError("SELECT", {}, _with_sqlstate("40P01")), True),  # deadlock: rolled back, run again
        (KpiEngineUnavailable("KPI engine answered 503: restarting"), True),
        (IntegrityError("INSERT", {}, _with_sqlstate("23505")), False),
        (DBAPIError("SELECT", {}, _with_sqlstate("22003")), False),  # numeric value out of range
        (ProgrammingError("SELECT", {}, _with_sqlstate("42703")), False),
        (KpiEngineRefused("KPI engine answered 403: facility not granted"), False),
        (ValueError("a bug"), False),
    ],
)
def test_only_errors_that_can_pass_are_retried(error: Exception, passes: bool) -> None:
    assert can_pass(error) is passes
