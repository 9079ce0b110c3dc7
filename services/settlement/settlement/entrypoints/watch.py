"""The period watch: periods past their run-out that still cannot be finalized are made visible
(`vr_settlement_statement_blocked`, alert `SettlementStatementBlocked`) and periods that became
finalizable or blocked are announced (`statement.ready`, `statement.blocked`), without anyone reading
them (docs/settlement.md, docs/webhooks.md).

Consumes: the contracts and the KPI engine's readings. Produces: the blocked gauge and period-state
events, periodically.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.exc import DBAPIError, OperationalError

from settlement.adapters.kpi_client import KpiEngineUnavailable
from settlement.adapters.repository import PostgresSettlementStore
from settlement.handlers import SettlementService

log = logging.getLogger(__name__)


class PeriodWatch:
    def __init__(
        self, store: PostgresSettlementStore, service: SettlementService, *, interval_s: float
    ) -> None:
        self._store, self._service, self._interval_s = store, service, interval_s

    async def run(self) -> None:
        while True:
            try:
                await self.check()
            except (KpiEngineUnavailable, OperationalError, DBAPIError, OSError) as exc:
                log.warning("blocked-statement check skipped", extra={"error": type(exc).__name__})
            await asyncio.sleep(self._interval_s)

    async def check(self) -> int:
        blocked = 0
        for stored in await self._store.contracts_of(None):
            blocked += await self._service.watch_periods(stored)
        return blocked
