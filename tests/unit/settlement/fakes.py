"""Fakes for settlement's ports (`settlement/domain/ports.py`, `handlers.KpiReader`): the handlers' logic
without PostgreSQL or the KPI engine — the integration tests run the real adapters."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from settlement.domain.contract import Contract
from settlement.domain.notifications import SettlementEvent
from settlement.domain.sources import KpiReading, KpiRequest
from settlement.domain.stored import Adjustment, FinalStatement
from vr_shared.identity import Identity


@dataclass
class FakeSettlementStore:
    period_inputs: dict[tuple[str, str], dict[str, Decimal]] = field(default_factory=dict)
    finals: dict[tuple[str, str], FinalStatement] = field(default_factory=dict)
    adjustment_rows: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    events: list[SettlementEvent] = field(default_factory=list)  # the outbox, in order
    period_states: dict[tuple[str, str], str | None] = field(default_factory=dict)

    async def inputs(self, contract_id: str, period: str) -> dict[str, Decimal]:
        return dict(self.period_inputs.get((contract_id, period), {}))

    async def put_inputs(
        self, contract_id: str, period: str, inputs: dict[str, Decimal], actor: Identity
    ) -> dict[str, str]:
        self.period_inputs[(contract_id, period)] = dict(inputs)
        await self.ask_recheck(contract_id, period, "period inputs changed after finalization")
        return {name: format(value, "f") for name, value in sorted(inputs.items())}

    async def final(self, contract_id: str, period: str) -> FinalStatement | None:
        return self.finals.get((contract_id, period))

    async def ask_recheck(self, contract_id: str, period: str, reason: str) -> None:
        final = self.finals.get((contract_id, period))
        if final is not None:
            self.finals[(contract_id, period)] = replace(
                final, rechecked=False, recheck_requests=final.recheck_requests + 1, recheck_reason=reason
            )

    async def mark_rechecked(self, contract_id: str, period: str, requests: int) -> bool:
        final = self.finals[(contract_id, period)]
        if final.rechecked or final.recheck_requests != requests:
            return False
        self.finals[(contract_id, period)] = replace(final, rechecked=True)
        return True

    async def finalize(
        self,
        contract_id: str,
        period: str,
        statement: dict[str, Any],
        basis: dict[str, Any],
        scope: tuple[str, list[str], list[str], date, date],
        idempotency_key: str | None,
        actor: Identity,
        event: SettlementEvent,
    ) -> FinalStatement:
        if (contract_id, period) not in self.finals:
            self.events.append(event)
        return self.finals.setdefault(
            (contract_id, period), FinalStatement(statement, basis, idempotency_key, rechecked=False)
        )

    async def adjustments(self, contract_id: str, period: str) -> list[Adjustment]:
        rows = self.adjustment_rows.get((contract_id, period), [])
        return [
            Adjustment(
                id=number,
                total_delta=Decimal(row["total_delta"]),
                lines=tuple((line["term_id"], Decimal(line["delta"])) for line in row["lines"]),
                reason=row["reason"],
                created_at=datetime(2026, 7, 15, tzinfo=UTC),
                total_after=row["statement"]["total"],
            )
            for number, row in enumerate(rows, start=1)
        ]

    async def adjustment_statements(self, contract_id: str, period: str) -> list[dict[str, Any]]:
        return [row["statement"] for row in self.adjustment_rows.get((contract_id, period), [])]

    async def add_adjustment(
        self,
        contract_id: str,
        period: str,
        expected_count: int,
        total_delta: Decimal,
        lines: list[dict[str, str]],
        reason: str,
        statement: dict[str, Any],
        event: SettlementEvent,
    ) -> bool:
        rows = self.adjustment_rows.setdefault((contract_id, period), [])
        if len(rows) != expected_count:
            return False
        self.events.append(event.with_data(adjustment_id=len(rows) + 1))
        rows.append(
            {
                "total_delta": format(total_delta, "f"),
                "lines": lines,
                "reason": reason,
                "statement": statement,
            }
        )
        return True

    async def note_period_state(
        self, contract_id: str, period: str, state: str | None, event: SettlementEvent | None
    ) -> bool:
        if (contract_id, period) in self.finals:  # the state was computed before a finalize
            return False
        if self.period_states.get((contract_id, period), "unknown") == state:
            return False
        self.period_states[(contract_id, period)] = state
        if event is not None:
            self.events.append(event)
        return event is not None


@dataclass
class FakeKpiReader:
    """Answers every request of a KPI with the reading set for that KPI name."""

    by_kpi: dict[str, KpiReading] = field(default_factory=dict)
    reads: int = 0

    async def read(self, contract: Contract, requests: list[KpiRequest]) -> dict[KpiRequest, KpiReading]:
        self.reads += 1
        return {r: self.by_kpi[r.source.kpi] for r in requests}
