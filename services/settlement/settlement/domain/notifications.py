"""Settlement events: what a billing system is told, by webhook or by the pull feed (docs/webhooks.md).

Each event is a fact settlement has just stored — a statement finalized or adjusted, a contract
version, a period that became finalizable or blocked — with what a billing system books from it and a
link to the full resource. The event is built here (pure) and written by the store in the same
transaction as its fact, so there is never a fact without its event or an event without its fact.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from settlement.domain.contract import Contract
from settlement.domain.statement import what_is_missing


class EventType(StrEnum):
    STATEMENT_READY = "statement.ready"  # a period has ended and its statement can be finalized
    STATEMENT_BLOCKED = "statement.blocked"  # past its run-out, and data it needs is not there
    STATEMENT_FINALIZED = "statement.finalized"
    STATEMENT_ADJUSTED = "statement.adjusted"  # late data changed a final period: the deltas to book
    CONTRACT_UPDATED = "contract.updated"  # a new version of a contract (version 1: its creation)


# The state of a period that is announced when it changes (`None`: nothing to announce).
PERIOD_STATE_EVENTS = {"ready": EventType.STATEMENT_READY, "blocked": EventType.STATEMENT_BLOCKED}


@dataclass(frozen=True, slots=True)
class SettlementEvent:
    type: EventType
    contract_id: str
    period: str | None
    health_system: str  # the parties: each one's subscribed endpoints receive it
    vendor: str
    data: dict[str, Any]
    id: str = field(default_factory=lambda: new_event_id())

    def with_data(self, **members: Any) -> SettlementEvent:
        """The same event with members only the store knows (an adjustment's id)."""
        return SettlementEvent(
            self.type,
            self.contract_id,
            self.period,
            self.health_system,
            self.vendor,
            {**self.data, **members},
            self.id,
        )


def new_event_id() -> str:
    """The event's id, sent as `webhook-id` on every attempt and replay (receivers deduplicate on it)."""
    return "evt_" + secrets.token_hex(16)


def payload(event_type: str, created_at: datetime, data: dict[str, Any]) -> dict[str, Any]:
    """The body every delivery of an event carries, and one item of the pull feed (Standard Webhooks'
    `type`, `timestamp`, `data`)."""
    return {"type": event_type, "timestamp": created_at.isoformat(), "data": data}


def statement_link(contract_id: str, period: str) -> str:
    return f"/v1/contracts/{contract_id}/settlements/{period}"


def _statement_event(
    event_type: EventType, contract: Contract, statement: dict[str, Any], **members: Any
) -> SettlementEvent:
    data = {
        "contract_id": contract.id,
        "contract_version": statement["contract_version"],
        "period": statement["period"],
        "period_start": statement["period_start"],
        "period_end": statement["period_end"],
        "status": statement["status"],
        "currency": statement["currency"],
        "total": statement["total"],
        **members,
        "link": statement_link(contract.id, statement["period"]),
    }
    return SettlementEvent(
        event_type, contract.id, statement["period"], contract.health_system, contract.vendor, data
    )


def finalized(contract: Contract, final: dict[str, Any]) -> SettlementEvent:
    """What an invoice is booked from: the frozen total and the SHA-256 that identifies the statement."""
    return _statement_event(
        EventType.STATEMENT_FINALIZED,
        contract,
        final,
        sha256=final["sha256"],
        finalized_at=final["finalized_at"],
    )


def adjusted(
    contract: Contract,
    recomputed: dict[str, Any],
    total_delta: str,
    lines: list[dict[str, str]],
    reason: str,
) -> SettlementEvent:
    """A credit or debit note: the deltas against the last booked amounts (the store adds the id)."""
    return _statement_event(
        EventType.STATEMENT_ADJUSTED,
        contract,
        {**recomputed, "status": "final"},
        total_delta=total_delta,
        total_after=recomputed["total"],
        lines=lines,
        reason=reason,
    )


def period_state(contract: Contract, statement: dict[str, Any], state: str) -> SettlementEvent:
    """A period that became finalizable (`ready`) or is blocked by missing data (with what is missing)."""
    members: dict[str, Any] = {"data_complete": statement["data_complete"]}
    if state == "blocked":
        members["missing"] = what_is_missing(statement)
    return _statement_event(PERIOD_STATE_EVENTS[state], contract, statement, **members)


def statement_state(statement: dict[str, Any], *, ended: bool) -> str | None:
    """`ready` when a period that has ended can be finalized, `blocked` when it is past its run-out and
    cannot; otherwise nothing to announce (still open, final, maturing without its data, or resting on
    a reading still within its KPI's maturation)."""
    if statement["status"] == "blocked":
        return "blocked"
    mature = not statement.get("maturing")
    if ended and statement["status"] in ("maturing", "draft") and statement["data_complete"] and mature:
        return "ready"
    return None


def contract_updated(contract: Contract, version: int) -> SettlementEvent:
    data = {
        "contract_id": contract.id,
        "version": version,
        "name": contract.name,
        "health_system": contract.health_system,
        "vendor": contract.vendor,
        "currency": contract.currency,
        "period": contract.period,
        "start": contract.start.isoformat(),
        "end": contract.end.isoformat(),
        "link": f"/v1/contracts/{contract.id}?version={version}",
    }
    return SettlementEvent(
        EventType.CONTRACT_UPDATED, contract.id, None, contract.health_system, contract.vendor, data
    )
