"""The change-feed consumer: late KPI changes reach final statements as adjustments.

Consumes: `vr.kpi-updates.v1` (compact notices of changed KPI cells, from the KPI engine). Produces:
adjustment records for final statements whose period and scope the change touches. Offsets are
committed after the batch's reconciliations, so a crash re-reads the notices; reconciling twice is
harmless (a second recomputation finds no new difference). The KPI engine or the database being away is
waited out with growing pauses (`adapters/failures.py` says which errors can pass). A final period whose
reconciliation fails on an error that cannot pass is left pending — durably, for the period watch — and
counted, and the batch goes on: one such period never holds back the others. Any other error stops the
loop and fails `/healthz`.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import date

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import CommitFailedError, KafkaError

from settlement import metrics
from settlement.adapters.failures import can_pass
from settlement.adapters.repository import PostgresSettlementStore
from settlement.handlers import SettlementService
from vr_shared.db import database_away

log = logging.getLogger(__name__)
Change = tuple[str, str, str, date]  # tenant, facility, kpi, day


class KpiUpdatesConsumer:
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        store: PostgresSettlementStore,
        service: SettlementService,
        *,
        retry_backoff_s: float = 2.0,
        max_backoff_s: float = 60.0,
    ) -> None:
        self._consumer, self._store, self._service = consumer, store, service
        self._retry_backoff_s, self._max_backoff_s = retry_backoff_s, max_backoff_s

    async def run(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=500, max_records=1000)
            if not batch:
                continue
            changes = {
                c for records in batch.values() for r in records if (c := _change(r.value)) is not None
            }
            await self._reconcile_until_done(changes)
            try:
                await self._consumer.commit({tp: rs[-1].offset + 1 for tp, rs in batch.items()})
            except (CommitFailedError, KafkaError) as exc:
                log.warning("offset commit failed after a rebalance", extra={"error": type(exc).__name__})

    async def _reconcile_until_done(self, changes: set[Change]) -> None:
        """Retry what can pass (the KPI engine or the database away), waiting twice as long each time up
        to `max_backoff_s`; anything else stops the loop, and `/healthz` then fails (a restart resumes
        from the last commit)."""
        delay = self._retry_backoff_s
        while True:
            try:
                await self.reconcile(changes)
                return
            except Exception as exc:
                if not can_pass(exc):
                    raise
                metrics.RECONCILIATION_RETRIES.labels(_cause(exc)).inc()
                log.warning(
                    "change notices wait: reconciliation failed",
                    extra={"error": type(exc).__name__, "retry_in_s": delay},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_backoff_s)

    async def reconcile(self, changes: set[Change]) -> None:
        touched: set[tuple[str, str, str]] = set()
        for tenant, facility, kpi, day in sorted(changes):
            for contract_id, period in await self._store.finals_touched_by(tenant, facility, kpi, day):
                touched.add((contract_id, period, kpi))
        metrics.KPI_UPDATES.labels("touches_final" if touched else "no_final").inc(len(changes))
        for contract_id, period in sorted({(c, p) for c, p, _ in touched}):
            kpis = ", ".join(sorted(k for c, p, k in touched if (c, p) == (contract_id, period)))
            await self._reconcile_or_leave_pending(contract_id, period, f"late KPI data: {kpis}")

    async def _reconcile_or_leave_pending(self, contract_id: str, period: str, reason: str) -> None:
        """One final period's reconciliation. An error that can pass goes up (the batch is retried); one
        that cannot leaves the period pending a reconciliation — stored before the offsets are
        committed, so it is never lost — for the period watch, which tries it each round."""
        try:
            await self._service.reconcile(contract_id, period, "kpi_update", reason)
        except Exception as exc:
            if can_pass(exc):
                raise
            await self._store.ask_recheck(contract_id, period, reason)
            metrics.RECONCILIATION_FAILURES.labels("change_feed").inc()
            log.exception(
                "reconciliation failed; left pending for the period watch",
                extra={"contract": contract_id, "period": period},
            )


def _cause(exc: BaseException) -> str:
    return "database" if database_away(exc) else "kpi_engine"


def _change(value: bytes | None) -> Change | None:
    try:
        notice = orjson.loads(value or b"")
        return (notice["tenant"], notice["facility"], notice["kpi"], date.fromisoformat(notice["bucket"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        log.warning("unreadable KPI change notice skipped")
        return None
