"""Response models of settlement's API (docs/api.md): what the OpenAPI document promises a billing
system's generated client. The domain keeps its own frozen types and JSON; these describe it at the
edge. Amounts are decimal strings (never floats); members a newer server may add are kept
(`extra="allow"`), so an older client still reads what it knows.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from settlement.domain.contract import Contract
from settlement.domain.notifications import EventType

DecimalString = Field(pattern=r"^-?\d+(\.\d+)?$", description="a decimal number as a string (exact)")


class _Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


# --- statements ------------------------------------------------------------------------------------


class Step(_Answer):
    """A named intermediate value of a line's computation, in order."""

    name: str
    value: str = Field(description="a decimal string, or a note")


class Line(_Answer):
    term_id: str
    kind: str
    amount: str = DecimalString
    inputs: dict[str, Any] = Field(description="every value the term used, KPI numerators included")
    steps: list[Step]
    complete: bool
    reason: str | None = Field(None, description="why the amount is 0 when a gate was not met")
    detail: str | None = None


class AdjustedLine(_Answer):
    term_id: str
    delta: str = DecimalString


class Adjustment(_Answer):
    """A change to a final period's amounts booked after finalization (the statement never changes)."""

    id: int
    total_delta: str = DecimalString
    total_after: str = DecimalString
    lines: list[AdjustedLine]
    reason: str
    created_at: str


class AdjustmentPage(_Answer):
    items: list[Adjustment]
    next: str | None


class MaturingReading(_Answer):
    """A KPI reading a statement uses that is still within its KPI's maturation (provisional)."""

    term_id: str
    kpi: str
    matures_on: str = Field(description="the first day the reading is mature (the period is finalizable)")


class Statement(_Answer):
    contract_id: str
    contract_version: int
    period: str
    period_start: str
    period_end: str = Field(description="the period's last day (inclusive)")
    status: Literal["open", "maturing", "draft", "blocked", "final", "simulated"]
    data_complete: bool
    maturing: list[MaturingReading] = Field(
        default_factory=list, description="readings still provisional: no money is final from them"
    )
    data_completeness: Literal["declared", "runout"]
    currency: str
    total: str = DecimalString
    lines: list[Line]
    data_cutoff: str
    computed_at: str
    adjustments: list[Adjustment]
    sha256: str | None = Field(None, description="final only: SHA-256 of the statement's canonical JSON")
    finalized_at: str | None = None
    basis: dict[str, Any] | None = Field(None, description="final only: what reproduces it")


class StatementPage(_Answer):
    items: list[Statement]
    next: str | None


class Simulation(_Answer):
    statements: list[Statement]


class Reconciliation(_Answer):
    adjustment: Adjustment | None


# --- contracts -------------------------------------------------------------------------------------


class ContractAnswer(Contract):
    """A contract version as stored."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)
    version: int
    created_at: str
    updated_at: str


class ContractSummary(_Answer):
    id: str
    name: str
    health_system: str
    vendor: str
    version: int
    period: str
    facilities: list[str]
    kpis: list[str] = Field(description="KPI grants the contract's terms read")
    start: str
    end: str
    updated_at: str


class ContractPage(_Answer):
    items: list[ContractSummary]
    next: str | None


class PeriodInputs(_Answer):
    contract_id: str
    period: str
    inputs: dict[str, str]


class AuditEntry(_Answer):
    seq: int
    at: str
    action: str
    period: str | None
    by: dict[str, str]
    previous: Any
    current: Any


class AuditPage(_Answer):
    items: list[AuditEntry]
    next: str | None


# --- webhooks and the settlement-event feed --------------------------------------------------------


class EndpointAnswer(_Answer):
    id: str
    url: str
    events: list[EventType]
    description: str | None
    created_at: str
    failing_since: str | None = Field(description="first failed delivery since the last success")
    disabled_at: str | None
    disabled_reason: str | None


class EndpointCreated(EndpointAnswer):
    secret: str = Field(description="`whsec_…`: verifies the signatures; shown this once")


class EndpointPage(_Answer):
    items: list[EndpointAnswer]
    next: str | None


class SecretRotated(_Answer):
    id: str
    secret: str = Field(description="the new `whsec_…` secret, shown this once")
    previous_secret_expires_at: str = Field(description="until then the old secret signs too")


class Attempt(_Answer):
    at: str
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryAnswer(_Answer):
    id: str
    endpoint_id: str
    event_id: str = Field(description="the `webhook-id` of every attempt")
    event_type: EventType
    status: Literal["pending", "delivered", "failed"]
    attempts: list[Attempt]
    next_attempt_at: str | None
    delivered_at: str | None
    created_at: str


class DeliveryPage(_Answer):
    items: list[DeliveryAnswer]
    next: str | None


class SettlementEventAnswer(_Answer):
    id: str = Field(description="the event's id (a webhook's `webhook-id`)")
    type: EventType
    timestamp: str
    data: dict[str, Any]


class SettlementEventPage(_Answer):
    items: list[SettlementEventAnswer]
    next: str = Field(description="always set: ask again with it for what comes next")
