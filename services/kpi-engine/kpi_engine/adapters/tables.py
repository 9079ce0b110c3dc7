"""The engine's tables (its own schema; connections put it first on the search path).

`events` is the source of truth (pseudonymised refs only). Everything else is derived from it and can
be rebuilt: `cells` (one KPI, facility, local day, dimension), and the indexes the non-additive KPIs
recompute from (`stays`, `outages`, `ar_snapshots`, `readmission_index`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import UserDefinedType

metadata = MetaData()


def _key() -> list[Column[object]]:
    return [
        Column("tenant", Text, nullable=False),
        Column("source", Text, nullable=False),
        Column("id", Text, nullable=False),
    ]


events = Table(
    "events",
    metadata,
    *_key(),
    Column("type", Text, nullable=False),
    Column("facility", Text, nullable=False),
    Column("event_time", DateTime(timezone=True), nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("payload_hash", LargeBinary, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("duplicates", Integer, nullable=False, server_default="0"),
    Column("retracted", Boolean, nullable=False, server_default="false"),
    PrimaryKeyConstraint("tenant", "source", "id"),
)

EVENT_COPY_COLUMNS = (
    "tenant",
    "source",
    "id",
    "type",
    "facility",
    "event_time",
    "payload",
    "payload_hash",
    "partition",
    "offset",
)
"""The columns a new event is written with (COPY); the others take their defaults."""

conflicts = Table(
    "conflicts",
    metadata,
    *_key(),
    Column("payload_hash", LargeBinary, nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("deliveries", Integer, nullable=False, server_default="1"),
    Column("first_seen_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant", "source", "id", "payload_hash"),
)

retractions = Table(
    "retractions",
    metadata,
    Column("tenant", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("retracted_id", Text, nullable=False),
    Column("retraction_id", Text, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Its event is not stored yet (it may never come): every batch of the tenant looks for it.
    Column("pending", Boolean, nullable=False, server_default="true"),
    PrimaryKeyConstraint("tenant", "source", "retracted_id"),
    Index("retractions_pending", "tenant", postgresql_where=text("pending")),
)

# Cancelled admissions and discharges (HL7 A11 / A13), by what they name: the patient's encounter, the
# fact and its time. A fact that matches stops counting, whichever of the two arrived first.
cancellations = Table(
    "cancellations",
    metadata,
    Column("tenant", Text, nullable=False),
    Column("patient", Text, nullable=False),
    Column("encounter", Text, nullable=False),
    Column("fact", Text, nullable=False),  # encounter.admitted or encounter.discharged
    Column("at", DateTime(timezone=True), nullable=False),
    Column("source", Text, nullable=False),  # the cancel event's key
    Column("id", Text, nullable=False),
    PrimaryKeyConstraint("tenant", "patient", "encounter", "fact", "at"),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("tenant", Text),
    Column("source", Text),
    Column("id", Text),
    Column("reason", Text, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("partition", "offset"),
    Index("dead_letters_by_event", "tenant", "source", "id"),
)

cells = Table(
    "cells",
    metadata,
    Column("tenant", Text, nullable=False),
    Column("kpi", Text, nullable=False),
    Column("facility", Text, nullable=False),
    Column("day", Date, nullable=False),
    Column("dimension", Text, nullable=False),
    Column("numerator", Numeric, nullable=False),
    Column("denominator", Numeric, nullable=False),
    Column("sample_size", BigInteger, nullable=False),
    PrimaryKeyConstraint("tenant", "kpi", "facility", "day", "dimension"),
)

stays = Table(
    "stays",
    metadata,
    *_key(),
    Column("patient", Text, nullable=False),
    Column("type", Text, nullable=False),  # encounter.admitted or encounter.discharged
    Column("encounter", Text, nullable=False),
    Column("facility", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),  # the event's time
    Column("encounter_class", Text, nullable=False),
    Column("planned", Boolean, nullable=False),  # admissions; false for discharges
    Column("disposition", Text),  # discharges
    Column("admitted_at", DateTime(timezone=True)),  # discharges
    # The engine's record order: taken when the row is written, under its patient's scope lock, so a
    # patient's later-recorded stays have higher numbers (docs/kpis.md, one standing discharge per stay).
    Column("received", BigInteger, nullable=False, server_default=text("nextval('stays_received')")),
    # A discharge a cancel stops (its own, or its stay's admission's): kept, since while it is its stay's
    # last received the stay has no discharge; its event is marked retracted like any cancelled fact.
    Column("cancelled", Boolean, nullable=False, server_default="false"),
    PrimaryKeyConstraint("tenant", "source", "id"),
    Index("stays_by_patient", "tenant", "patient"),
)

# One row per scope two engine instances could both recompute — a patient's readmission state, a
# system's outages, a facility's A/R snapshots. A batch locks the rows of the scopes it touches, in key
# order, before it reads them (docs/decisions/0005-exactly-once-effect.md): row locks, not advisory ones,
# so a batch touching thousands of patients does not fill PostgreSQL's lock table.
# Each tenant's IANA zone as its latest events carried it: the local days a rebuild computes in.
tenant_zones = Table(
    "tenant_zones",
    metadata,
    Column("tenant", Text, nullable=False),
    Column("timezone", Text, nullable=False),
    PrimaryKeyConstraint("tenant"),
)

scope_locks = Table(
    "scope_locks",
    metadata,
    Column("tenant", Text, nullable=False),
    Column("scope", Text, nullable=False),
    # Bumped to take the lock: an update of a column no index holds stays on its page (HOT), room left
    # by the fill factor.
    Column("batches", BigInteger, nullable=False, server_default="0"),
    PrimaryKeyConstraint("tenant", "scope"),
    postgresql_with={"fillfactor": 70},
)

readmission_index = Table(
    "readmission_index",
    metadata,
    *_key(),
    Column("patient", Text, nullable=False),
    Column("facility", Text, nullable=False),
    Column("day", Date, nullable=False),
    Column("readmitted", Boolean, nullable=False),
    PrimaryKeyConstraint("tenant", "source", "id"),
    Index("readmission_index_by_patient", "tenant", "patient"),
)

outages = Table(
    "outages",
    metadata,
    *_key(),
    Column("facility", Text, nullable=False),
    Column("system", Text, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("tenant", "source", "id"),
    Index("outages_by_system", "tenant", "facility", "system", "started_at"),
)

ar_snapshots = Table(
    "ar_snapshots",
    metadata,
    *_key(),
    Column("facility", Text, nullable=False),
    Column("day", Date, nullable=False),
    Column("event_time", DateTime(timezone=True), nullable=False),
    Column("net_ar", Numeric, nullable=False),
    Column("avg_daily_net_revenue", Numeric, nullable=False),
    PrimaryKeyConstraint("tenant", "source", "id"),
    Index("ar_snapshots_by_day", "tenant", "facility", "day"),
)


class TransactionId(UserDefinedType[int]):
    """PostgreSQL's `xid8`: which transaction wrote a row."""

    cache_ok = True

    def get_col_spec(self, **_: Any) -> str:
        return "xid8"


outbox = Table(
    "outbox",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=True),
    Column("payload", JSONB, nullable=False),
    Column("xid", TransactionId(), nullable=False, server_default=text("pg_current_xact_id()")),
    Column("queued_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("outbox_in_commit_order", "xid", "seq"),
)
"""Change notices, handed out in commit order: docs/decisions/0007-commit-order.md."""

feed_declarations = Table(
    "feed_declarations",
    metadata,
    *_key(),
    Column("facility", Text, nullable=False),
    Column("feed", Text, nullable=False),
    Column("through", DateTime(timezone=True), nullable=False),
    Column("declared_at", DateTime(timezone=True), nullable=False),  # the declaration's event time
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant", "source", "id"),
    Index("feed_declarations_by_feed", "tenant", "facility", "feed", "through"),
)
"""`feed.complete` declarations in force (a retracted one is deleted): a feed's watermark is their
latest `through`, so it only moves back when the declaration that set it is retracted."""

feed_activity = Table(
    "feed_activity",
    metadata,
    Column("tenant", Text, nullable=False),
    Column("facility", Text, nullable=False),
    Column("feed", Text, nullable=False),
    Column("day", Date, nullable=False),  # the tenant's local day of the events' time
    Column("events", BigInteger, nullable=False),
    Column("newest_event_time", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("tenant", "facility", "feed", "day"),
)
"""Events first received per facility, feed and local day, and the newest event time among them."""
