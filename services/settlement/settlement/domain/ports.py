"""What the settlement service needs from storage, by role: `PostgresSettlementStore` implements it,
handlers depend on it (and tests can hand them a fake)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, Protocol

from settlement.domain.notifications import SettlementEvent
from settlement.domain.stored import Adjustment, FinalStatement
from vr_shared.identity import Identity


class ReadingsUnavailable(Exception):
    """The KPI readings could not be read (the reader's adapter says why): an error, never "no data"."""


class SettlementStore(Protocol):
    async def inputs(self, contract_id: str, period: str) -> dict[str, Decimal]: ...

    async def put_inputs(
        self, contract_id: str, period: str, inputs: dict[str, Decimal], actor: Identity
    ) -> dict[str, str]: ...

    async def final(self, contract_id: str, period: str) -> FinalStatement | None: ...

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
    ) -> FinalStatement: ...

    async def ask_recheck(self, contract_id: str, period: str, reason: str) -> None: ...

    async def mark_rechecked(self, contract_id: str, period: str, requests: int) -> bool: ...

    async def adjustments(self, contract_id: str, period: str) -> list[Adjustment]: ...

    async def adjustment_statements(self, contract_id: str, period: str) -> list[dict[str, Any]]: ...

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
    ) -> bool: ...

    async def note_period_state(
        self, contract_id: str, period: str, state: str | None, event: SettlementEvent | None
    ) -> bool: ...
