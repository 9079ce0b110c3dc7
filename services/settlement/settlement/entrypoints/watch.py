"""The period watch: periods past their run-out that still cannot be finalized are made visible
(`vr_settlement_statement_blocked`, alert `SettlementStatementBlocked`) and periods that became
finalizable or blocked are announced (`statement.ready`, `statement.blocked`), without anyone reading
them (docs/settlement.md, docs/webhooks.md). Final statements with a reconciliation pending (a finalize
that stopped before its recheck, an input put, a reconciliation that waited for readings to mature or
failed) are reconciled. One contract that cannot be checked never stops the others; the KPI engine
unreachable or the database away ends the round at once (every other contract would meet it too).

Consumes: the contracts and the KPI engine's readings. Produces: the blocked gauge and period-state
events, periodically.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TypeVar

from settlement import metrics
from settlement.adapters.failures import can_pass, engine_unreachable
from settlement.adapters.repository import PostgresSettlementStore
from settlement.handlers import SettlementService
from vr_shared.db import database_away

log = logging.getLogger(__name__)
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
            except Exception as exc:
                if not can_pass(exc):
                    raise
                log.warning("period watch round ended early", extra={"error": repr(exc)})
            await asyncio.sleep(self._interval_s)

    async def check(self) -> int:
        pending = await self._store.finals_to_recheck()
        metrics.FINALS_PENDING.set(len(pending))
        for contract_id, period in pending:
            await self._isolated(contract_id, self._recheck(contract_id, period))
        blocked = 0
        for contract_id in await self._store.contract_ids():
            blocked += await self._isolated(contract_id, self._watch(contract_id)) or 0
        return blocked

    async def _recheck(self, contract_id: str, period: str) -> None:
        try:
            await self._service.recheck(contract_id, period)
        except Exception as exc:
            if not can_pass(exc):  # stays pending: tried again next round, counted each time
                metrics.RECONCILIATION_FAILURES.labels("period_watch").inc()
            raise

    async def _watch(self, contract_id: str) -> int:
        stored = await self._store.contract(contract_id)
        return 0 if stored is None else await self._service.watch_periods(stored)

    async def _isolated(self, contract_id: str, work: Awaitable[T]) -> T | None:
        """One contract's work; whatever goes wrong with one contract (a document stored before a rule
        refused it, a reading the engine refuses, a bug) is logged — and counted unless it can pass —
        and the watch goes on with the others. The engine unreachable or the database away ends the
        round: each further contract would only wait the same timeout."""
        try:
            return await work
        except Exception as exc:
            if engine_unreachable(exc) or database_away(exc):
                raise
            if can_pass(exc):  # the engine answered a server error for this one
                log.warning(
                    "period watch skipped a contract", extra={"contract": contract_id, "error": repr(exc)}
                )
                return None
            metrics.WATCH_FAILURES.inc()
            log.exception("period watch skipped a contract", extra={"contract": contract_id})
        return None
