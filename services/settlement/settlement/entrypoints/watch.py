"""The period watch: periods past their run-out that still cannot be finalized are made visible
(`vr_settlement_statement_blocked`, alert `SettlementStatementBlocked`) and periods that became
finalizable or blocked are announced (`statement.ready`, `statement.blocked`), without anyone reading
them (docs/settlement.md, docs/webhooks.md). Final statements whose finalize stopped before their
recheck are rechecked. One contract that cannot be checked never stops the others.

Consumes: the contracts and the KPI engine's readings. Produces: the blocked gauge and period-state
events, periodically.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError

from settlement import metrics
from settlement.adapters.kpi_client import KpiEngineUnavailable
from settlement.adapters.repository import PostgresSettlementStore
from settlement.handlers import SettlementService

log = logging.getLogger(__name__)
_UNAVAILABLE = (KpiEngineUnavailable, OperationalError, DBAPIError, OSError)
T = TypeVar("T")


class PeriodWatch:
    def __init__(
        self, store: PostgresSettlementStore, service: SettlementService, *, interval_s: float
    ) -> None:
        self._store, self._service, self._interval_s = store, service, interval_s

    async def run(self) -> None:
        while True:
            try:
                await self.check()
            except _UNAVAILABLE as exc:
                log.warning("blocked-statement check skipped", extra={"error": type(exc).__name__})
            await asyncio.sleep(self._interval_s)

    async def check(self) -> int:
        for contract_id, period in await self._store.finals_to_recheck():
            await self._isolated(contract_id, self._service.recheck(contract_id, period))
        blocked = 0
        for contract_id in await self._store.contract_ids():
            blocked += await self._isolated(contract_id, self._watch(contract_id)) or 0
        return blocked

    async def _watch(self, contract_id: str) -> int:
        stored = await self._store.contract(contract_id)
        return 0 if stored is None else await self._service.watch_periods(stored)

    async def _isolated(self, contract_id: str, work: Awaitable[T]) -> T | None:
        """One contract's work; whatever goes wrong with one contract (a document stored before a rule
        refused it, a reading the engine refuses, a bug) is logged — and counted unless it is the engine
        or the database away — and the watch goes on with the others."""
        try:
            return await work
        except _UNAVAILABLE as exc:
            log.warning(
                "period watch skipped a contract", extra={"contract": contract_id, "error": repr(exc)}
            )
        except Exception:
            metrics.WATCH_FAILURES.inc()
            log.exception("period watch skipped a contract", extra={"contract": contract_id})
        return None
