"""What the store keeps: a contract with its version history's latest entry, a final statement, and the
adjustments booked against it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from settlement.domain.contract import Contract
from settlement.domain.money import decimal_text
from settlement.domain.statement import kpi_grants


@dataclass(frozen=True, slots=True)
class StoredContract:
    contract: Contract
    version: int
    created_at: datetime
    updated_at: datetime

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.contract.id,
            "name": self.contract.name,
            "health_system": self.contract.health_system,
            "vendor": self.contract.vendor,
            "version": self.version,
            "period": self.contract.period,
            "facilities": list(self.contract.facilities),
            "kpis": kpi_grants(self.contract),
            "start": self.contract.start.isoformat(),
            "end": self.contract.end.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class FinalStatement:
    statement: dict[str, Any]
    basis: dict[str, Any]
    idempotency_key: str | None
    # No reconciliation pending: reconciled once more after it was stored (what changed while it was
    # finalized is booked), and after every later request (an input put, a deferred or failed one).
    rechecked: bool = True
    recheck_requests: int = 0  # how many were asked for: a recheck is done only if none came meanwhile
    recheck_reason: str | None = None  # why the pending one was asked for (its adjustment's reason)


@dataclass(frozen=True, slots=True)
class Adjustment:
    """A change to a final period booked after finalization: per-line deltas against the amounts booked
    before it, the total delta and the total after it (the final statement itself never changes)."""

    id: int
    total_delta: Decimal
    lines: tuple[tuple[str, Decimal], ...]  # (term id, delta)
    reason: str
    created_at: datetime
    total_after: str

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "total_delta": decimal_text(self.total_delta),
            "lines": [{"term_id": term, "delta": decimal_text(delta)} for term, delta in self.lines],
            "reason": self.reason,
            "created_at": self.created_at.isoformat(),
            "total_after": self.total_after,
        }
