"""Settlement's tables (its own schema; connections put it first on the search path).

Contracts are versioned documents; period inputs are per contract and period; a final statement is
frozen with everything needed to recompute it; adjustments and the audit log are append-only.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.types import UserDefinedType

metadata = MetaData()

contracts = Table(
    "contracts",
    metadata,
    Column("id", Text, primary_key=True),
    Column("health_system", Text, nullable=False),
    Column("vendor", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("contracts_by_health_system", "health_system"),
    Index("contracts_by_vendor", "vendor"),
)

contract_versions = Table(
    "contract_versions",
    metadata,
    Column("contract_id", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("document", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("created_by", Text, nullable=False),
    PrimaryKeyConstraint("contract_id", "version"),
)

period_inputs = Table(
    "period_inputs",
    metadata,
    Column("contract_id", Text, nullable=False),
    Column("period", Text, nullable=False),
    Column("inputs", JSONB, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("contract_id", "period"),
)

final_statements = Table(
    "final_statements",
    metadata,
    Column("contract_id", Text, nullable=False),
    Column("period", Text, nullable=False),
    Column("contract_version", Integer, nullable=False),
    Column("statement", JSONB, nullable=False),
    Column("sha256", Text, nullable=False),
    # What recomputes it: the contract document and inputs it used (KPI readings are in its lines).
    Column("basis", JSONB, nullable=False),
    # Which KPI changes can touch it (the change feed is matched against these).
    Column("health_system", Text, nullable=False),
    Column("facilities", ARRAY(Text), nullable=False),
    Column("kpis", ARRAY(Text), nullable=False),
    Column("period_start", Date, nullable=False),
    Column("period_end", Date, nullable=False),  # exclusive
    Column("idempotency_key", Text),
    Column("finalized_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("finalized_by", Text, nullable=False),
    # Null while a reconciliation is pending: once more after it was stored, after an input put, after
    # one that waited for maturation or failed (docs/settlement.md, "Finalize"); the watch does it.
    Column("rechecked_at", DateTime(timezone=True)),
    # Requests so far: a recheck marks it done only if none came after it read the data.
    Column("recheck_requests", BigInteger, nullable=False, server_default=text("0")),
    Column("recheck_reason", Text),  # the adjustment's reason when the pending recheck books one
    PrimaryKeyConstraint("contract_id", "period"),
    Index("final_statements_by_scope", "health_system", "period_start"),
    Index("final_statements_to_recheck", "finalized_at", postgresql_where=text("rechecked_at IS NULL")),
)

adjustments = Table(
    "adjustments",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("contract_id", Text, nullable=False),
    Column("period", Text, nullable=False),
    Column("total_delta", Numeric, nullable=False),
    Column("lines", JSONB, nullable=False),
    Column("reason", Text, nullable=False),
    Column("statement", JSONB, nullable=False),  # the recomputation the deltas lead to
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("adjustments_by_statement", "contract_id", "period", "id"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("contract_id", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("period", Text),
    Column("tenant", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("key_id", Text, nullable=False),
    Column("previous", JSONB),
    Column("current", JSONB),
    Index("audit_log_by_contract", "contract_id", "seq"),
)

# --- billing-system notifications (docs/webhooks.md) -------------------------------------------------


class TransactionId(UserDefinedType[int]):
    """PostgreSQL's `xid8`: which transaction wrote a row."""

    cache_ok = True

    def get_col_spec(self, **_: Any) -> str:
        return "xid8"


# The outbox and the pull feed: every settlement event, written in the transaction of its fact.
settlement_events = Table(
    "settlement_events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=True),
    Column("id", Text, nullable=False, unique=True),
    Column("type", Text, nullable=False),
    Column("contract_id", Text, nullable=False),
    Column("period", Text),
    Column("health_system", Text, nullable=False),
    Column("vendor", Text, nullable=False),
    Column("data", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("xid", TransactionId(), nullable=False, server_default=text("pg_current_xact_id()")),
    Index("settlement_events_in_commit_order", "xid", "seq"),
    Index("settlement_events_by_health_system", "health_system", "xid", "seq"),
    Index("settlement_events_by_vendor", "vendor", "xid", "seq"),
)  # read in commit order: docs/decisions/0007-commit-order.md

# The last announced state of each period (ready / blocked / nothing): an event when it changes.
period_states = Table(
    "period_states",
    metadata,
    Column("contract_id", Text, nullable=False),
    Column("period", Text, nullable=False),
    Column("state", Text),
    Column("changed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("contract_id", "period"),
)

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", Text, primary_key=True),
    Column("tenant", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("events", ARRAY(Text), nullable=False),
    Column("description", Text),
    Column("secret", Text, nullable=False),
    # After a rotation the previous secret signs too, until it expires.
    Column("previous_secret", Text),
    Column("previous_secret_expires_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("created_by", Text, nullable=False),
    Column("failing_since", DateTime(timezone=True)),  # first failure since the last success
    Column("disabled_at", DateTime(timezone=True)),
    Column("disabled_reason", Text),
    Index("webhook_endpoints_by_tenant", "tenant", "id"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("endpoint_id", Text, ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False),
    Column("event_seq", BigInteger, ForeignKey("settlement_events.seq"), nullable=False),
    Column("status", Text, nullable=False),  # pending, delivered, failed
    Column("failed_attempts", Integer, nullable=False, server_default="0"),  # since the schedule began
    Column("next_attempt_at", DateTime(timezone=True)),
    Column("attempts", JSONB, nullable=False, server_default="[]"),  # every attempt, for the owner to see
    Column("delivered_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("endpoint_id", "event_seq"),
    Index("webhook_deliveries_by_endpoint", "endpoint_id", "id"),
    Index(
        "webhook_deliveries_due",
        "next_attempt_at",
        postgresql_where=text("status = 'pending'"),
    ),
    # The claim's few oldest due deliveries of each endpoint (adapters/webhooks.py, _CLAIM).
    Index(
        "webhook_deliveries_due_by_endpoint",
        "endpoint_id",
        "next_attempt_at",
        "id",
        postgresql_where=text("status = 'pending'"),
    ),
)
