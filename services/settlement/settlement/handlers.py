"""What settlement does: compute statements, finalize them, reconcile late data, simulate terms.

Statements are computed from the contract, the period inputs and KPI readings fetched for exactly the
requests the terms need; the maths is the pure domain. A final statement is frozen with its basis
(contract document, inputs, readings) and its SHA-256; later changes become adjustments.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from settlement import metrics
from settlement.domain import notifications
from settlement.domain.contract import Contract, load_contract
from settlement.domain.money import decimal_text
from settlement.domain.periods import (
    Period,
    Status,
    has_ended,
    parse_period,
    periods_until,
    runout_passed,
    status_at,
)
from settlement.domain.ports import ReadingsUnavailable, SettlementStore
from settlement.domain.sources import KpiReading, KpiRequest, KpiSource, Values
from settlement.domain.statement import (
    canonical_hash,
    compute_line,
    kpi_requests,
    kpis_used,
    line_deltas,
    statement,
    what_is_missing,
)
from settlement.domain.stored import Adjustment, FinalStatement, StoredContract
from settlement.domain.targets import kpi_targets
from vr_shared.identity import Identity

log = logging.getLogger(__name__)


class KpiReader(Protocol):
    async def read(self, contract: Contract, requests: list[KpiRequest]) -> dict[KpiRequest, KpiReading]: ...


class PeriodNotEnded(Exception):
    """A period is finalized only once it has ended."""


class StatementIncomplete(Exception):
    """Finalize refused: the statement rests on data that is not there (docs/settlement.md)."""

    def __init__(self, missing: dict[str, list[dict[str, Any]]]) -> None:
        feeds = sorted({f"{m['facility']}/{m['feed']}" for m in missing["missing_feeds"]})
        parts = [
            *(["feeds not complete through the period's end: " + ", ".join(feeds)] if feeds else []),
            *(f"{m['term_id']}: {m['detail']}" for m in missing["missing_inputs"]),
            *(f"{m['term_id']}: {m['reason']} ({m['detail']})" for m in missing["no_kpi_data"]),
        ]
        super().__init__("the statement is not complete; " + "; ".join(parts))
        self.missing = missing


class StatementMaturing(Exception):
    """Finalize refused: a reading the statement uses is still within its KPI's maturation — a provisional
    value is never money (docs/settlement.md)."""

    def __init__(self, maturing: list[dict[str, str]]) -> None:
        kpis = sorted({(item["kpi"], item["matures_on"]) for item in maturing})
        named = ", ".join(f"{kpi} matures on {day}" for kpi, day in kpis)
        super().__init__(f"the statement uses readings still within their KPI's maturation: {named}")
        self.maturing = maturing


@dataclass(frozen=True, slots=True)
class Computed:
    statement: dict[str, Any]
    readings: dict[KpiRequest, KpiReading]
    inputs: dict[str, Decimal]


def publish_targets(contract: Contract) -> None:
    """Expose the contract's KPI targets as gauges (a changed contract replaces its old ones)."""
    for labels in list(metrics.KPI_TARGET._metrics):
        if labels[0] == contract.id:
            metrics.KPI_TARGET.remove(*labels)
    for target in kpi_targets(contract):
        metrics.KPI_TARGET.labels(
            contract.id,
            target.term_id,
            contract.health_system,
            target.kpi,
            target.dimension,
            target.direction,
        ).set(float(target.level))


class SettlementService:
    def __init__(
        self,
        store: SettlementStore,
        kpis: KpiReader,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store, self._kpis, self._clock = store, kpis, clock

    def period(self, contract: Contract, period_id: str) -> Period:
        return parse_period(contract.period, period_id, contract.start, contract.end)

    async def compute(
        self,
        contract: Contract,
        version: int,
        period: Period,
        inputs: dict[str, Decimal],
        *,
        status: Status | None = None,
        published: bool = True,
    ) -> Computed:
        """`published`: the amount is one of the contract's (not a what-if), so its gauges show it."""
        started = time.perf_counter()
        now = self._clock()
        readings = await self._kpis.read(contract, kpi_requests(contract, period))
        if contract.data_completeness == "runout" and runout_passed(
            period, contract.runout_days, contract.timezone, now
        ):  # feeds are taken as complete once the run-out has passed: pipelines that cannot declare
            readings = {request: replace(r, missing=()) for request, r in readings.items()}
        values = Values(inputs, readings)
        lines = [compute_line(term, contract, period, values) for term in contract.terms]
        state = status or status_at(period, contract.runout_days, contract.timezone, now)
        result = statement(
            contract, version, period, state, lines, data_cutoff=now, computed_at=self._clock()
        )
        metrics.STATEMENT_SECONDS.observe(time.perf_counter() - started)
        metrics.STATEMENTS_COMPUTED.labels(result["status"] if published else "simulated").inc()
        if published:  # a what-if names any contract id it likes: it must not set a real contract's gauges
            metrics.SETTLEMENT_AMOUNT.labels(contract.id, period.id, result["status"], contract.currency).set(
                float(result["total"])
            )
        if published and status is None:  # a current statement (not a finalization or a reconciliation)
            metrics.STATEMENT_BLOCKED.labels(contract.id, period.id).set(result["status"] == "blocked")
        return Computed(result, readings, inputs)

    async def statement(self, stored: StoredContract, period_id: str) -> dict[str, Any]:
        period = self.period(stored.contract, period_id)
        # Most statements are not final: their inputs are read while the final record is looked up.
        final, inputs = await asyncio.gather(
            self._store.final(stored.contract.id, period.id),
            self._store.inputs(stored.contract.id, period.id),
        )
        if final is not None:
            return await self._final_with_adjustments(stored.contract.id, final.statement)
        return (await self.compute(stored.contract, stored.version, period, inputs)).statement

    def periods_begun(self, stored: StoredContract) -> list[Period]:
        """The contract's periods that have begun, oldest first."""
        today = self._clock().astimezone(ZoneInfo(stored.contract.timezone)).date()
        return periods_until(stored.contract.period, stored.contract.start, stored.contract.end, today)

    async def watch_periods(self, stored: StoredContract) -> int:
        """Recompute every period that has ended and is not final, so a blocked one shows on its gauge
        and a period that became finalizable (`statement.ready`) or blocked (`statement.blocked`) is
        announced even when nobody reads it; returns how many are blocked."""
        contract, now = stored.contract, self._clock()
        blocked = 0
        for period in self.periods_begun(stored):
            if not has_ended(period, contract.timezone, now):
                continue
            current = await self.statement(stored, period.id)
            blocked += current["status"] == "blocked"
            if current["status"] == "final":
                continue
            state = notifications.statement_state(current, ended=True)
            event = None if state is None else notifications.period_state(contract, current, state)
            await self._store.note_period_state(contract.id, period.id, state, event)
        return blocked

    async def finalize(
        self, stored: StoredContract, period_id: str, idempotency_key: str | None, actor: Identity
    ) -> tuple[dict[str, Any], bool]:
        """The final statement and whether this call created it (a repeat returns the same one)."""
        contract = stored.contract
        period = self.period(contract, period_id)
        existing = await self._store.final(contract.id, period.id)
        if existing is not None:
            if not existing.rechecked:  # a reconciliation is pending (its finalize stopped before it…)
                await self._recheck_or_leave_it(contract.id, period.id, "finalize")
            return await self._final_with_adjustments(contract.id, existing.statement), False
        if not has_ended(period, contract.timezone, self._clock()):
            raise PeriodNotEnded(f"period {period.id} has not ended; it can be finalized from {period.end}")
        inputs = await self._store.inputs(contract.id, period.id)
        computed = await self.compute(contract, stored.version, period, inputs, status="final")
        if not computed.statement["data_complete"]:
            raise StatementIncomplete(what_is_missing(computed.statement))
        if computed.statement["maturing"]:
            raise StatementMaturing(computed.statement["maturing"])
        final = dict(computed.statement)
        final["basis"] = _basis(contract, computed)
        final["sha256"] = canonical_hash(final)
        final["finalized_at"] = self._clock().isoformat()
        scope = (
            contract.health_system,
            list(contract.facilities),
            kpis_used(contract),
            period.start,
            period.end,
        )
        stored_final = await self._store.finalize(
            contract.id,
            period.id,
            final,
            final["basis"],
            scope,
            idempotency_key,
            actor,
            notifications.finalized(contract, final),
        )
        created = stored_final.statement["sha256"] == final["sha256"]
        metrics.STATEMENT_BLOCKED.labels(contract.id, period.id).set(0)
        if created:
            metrics.FINALIZATIONS.inc()
        if not stored_final.rechecked:
            await self._recheck_or_leave_it(contract.id, period.id, "finalize")
        return await self._final_with_adjustments(contract.id, stored_final.statement), created

    async def recheck(self, contract_id: str, period_id: str, trigger: str = "recheck") -> Adjustment | None:
        """Do a final period's pending reconciliation, then mark it done.

        Finalize reads the data, then stores the statement. A change landing in between — a late event's
        change notice, an input put — found nothing final to reconcile, and the statement does not hold
        it. Read again after the statement is stored, every such change is in the final statement or in
        this one adjustment; any later change finds the statement final and is reconciled as usual.
        The same pending mark carries what must not be lost after a commit: an input put, a
        reconciliation that waited for readings to mature or that failed. It stays when this one is
        deferred too, and when another request came while this one ran (its data may be newer than
        what this one read). Concurrent reconciliations book each difference once (`add_adjustment`)."""
        final = await self._store.final(contract_id, period_id)
        if final is None or final.rechecked:
            return None
        reason = final.recheck_reason or "data changed while the period was being finalized"
        deferred, adjustment = await self._reconcile(final, contract_id, period_id, trigger, reason)
        if not deferred:
            await self._store.mark_rechecked(contract_id, period_id, final.recheck_requests)
        return adjustment

    async def _recheck_or_leave_it(self, contract_id: str, period_id: str, trigger: str) -> None:
        """After a committed write (a final statement, a final period's inputs), its reconciliation is
        tried at once — but whatever it meets, the write stands and its answer is a success: the
        reconciliation stays pending and the period watch (or a repeated finalize) does it."""
        try:
            await self.recheck(contract_id, period_id, trigger)
        except ReadingsUnavailable as exc:
            log.warning(
                "reconciliation left to the period watch",
                extra={"contract": contract_id, "period": period_id, "error": str(exc)},
            )
        except Exception:  # the write has committed: its answer stands; the watch retries, counting failures
            metrics.RECONCILIATION_FAILURES.labels(trigger).inc()
            log.exception(
                "reconciliation left to the period watch",
                extra={"contract": contract_id, "period": period_id},
            )

    async def reconcile(
        self, contract_id: str, period_id: str, trigger: str, reason: str
    ) -> Adjustment | None:
        """Recompute a final period on today's data; a difference becomes an adjustment record. When the
        readings are not complete or not mature yet it books nothing and leaves the period pending a
        reconciliation: no change notice comes when a reading matures, the period watch does it then."""
        final = await self._store.final(contract_id, period_id)
        if final is None:
            return None
        return (await self._reconcile(final, contract_id, period_id, trigger, reason))[1]

    async def _reconcile(
        self, final: FinalStatement, contract_id: str, period_id: str, trigger: str, reason: str
    ) -> tuple[bool, Adjustment | None]:
        """(deferred, the adjustment booked, if any)."""
        contract = load_contract(final.basis["contract"])
        period = self.period(contract, period_id)
        while True:  # another reconciliation booked first: recompute against what it booked
            adjustments = await self._store.adjustments(contract_id, period_id)
            inputs = await self._store.inputs(contract_id, period_id)
            current = await self.compute(
                contract, final.statement["contract_version"], period, inputs, status="final"
            )
            if not current.statement["data_complete"] or current.statement["maturing"]:
                # A late change is booked only from complete, mature readings: the same rule as finalize.
                metrics.RECONCILIATIONS_DEFERRED.inc()
                await self._store.ask_recheck(contract_id, period_id, reason)
                return True, None
            baseline = await self._latest_amounts(contract_id, period_id, final.statement)
            deltas, total_delta = line_deltas(baseline, current.statement)
            if not deltas and total_delta == 0:
                return False, None
            event = notifications.adjusted(
                contract, current.statement, decimal_text(total_delta), deltas, reason
            )
            if await self._store.add_adjustment(
                contract_id,
                period_id,
                len(adjustments),
                total_delta,
                deltas,
                reason,
                current.statement,
                event,
            ):
                metrics.ADJUSTMENTS.labels(trigger).inc()
                return False, (await self._store.adjustments(contract_id, period_id))[-1]

    async def put_inputs(
        self, contract_id: str, period_id: str, inputs: dict[str, Decimal], actor: Identity
    ) -> dict[str, str]:
        """Store a period's inputs; for a final period the change is an adjustment, never an edit. The
        store leaves a final period pending a reconciliation in the put's own transaction; it is tried at
        once, and left to the period watch when it cannot be done now (the put has succeeded)."""
        stored = await self._store.put_inputs(contract_id, period_id, inputs, actor)
        await self._recheck_or_leave_it(contract_id, period_id, "inputs")
        return stored

    async def _latest_amounts(
        self, contract_id: str, period_id: str, final: dict[str, Any]
    ) -> dict[str, Any]:
        """The final statement as corrected by its adjustments so far (the last recomputation)."""
        adjustments = await self._store.adjustment_statements(contract_id, period_id)
        return adjustments[-1] if adjustments else final

    async def _final_with_adjustments(self, contract_id: str, final: dict[str, Any]) -> dict[str, Any]:
        booked = await self._store.adjustments(contract_id, final["period"])
        return {**final, "adjustments": [adjustment.as_json() for adjustment in booked]}

    async def simulate(
        self, contract: Contract, period_ids: list[str], inputs: dict[str, dict[str, Decimal]]
    ) -> list[dict[str, Any]]:
        results = []
        for period_id in period_ids:
            period = self.period(contract, period_id)
            computed = await self.compute(contract, 0, period, inputs.get(period_id, {}), published=False)
            results.append({**computed.statement, "status": "simulated"})
        return results


def _basis(contract: Contract, computed: Computed) -> dict[str, Any]:
    """Everything that reproduces the statement: the contract as it was, inputs, KPI readings."""
    return {
        "contract": contract.as_document(),
        "inputs": {name: decimal_text(value) for name, value in sorted(computed.inputs.items())},
        "kpi_readings": [
            {
                "kpi": request.source.kpi,
                "dimension": dict(request.source.dimension),
                "start": request.start.isoformat(),
                "end": request.end.isoformat(),
                **reading.as_json(),
            }
            for request, reading in sorted(
                computed.readings.items(), key=lambda item: (item[0].source.label(), item[0].start)
            )
        ],
    }


def readings_of(basis: dict[str, Any]) -> dict[KpiRequest, KpiReading]:
    """The KPI readings a final statement's basis recorded (to recompute it exactly as it was)."""
    return {
        KpiRequest(
            KpiSource(kpi=item["kpi"], dimension=item["dimension"]),
            date.fromisoformat(item["start"]),
            date.fromisoformat(item["end"]),
        ): KpiReading.from_json(item)
        for item in basis["kpi_readings"]
    }
