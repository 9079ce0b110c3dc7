"""What the store keeps: a contract with its version history's latest entry, and a final statement."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from settlement.domain.contract import Contract
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
