"""Initial schema: events (source of truth), conflicts, retractions, dead letters, cells and the
indexes the non-additive KPIs recompute from, and the change-feed outbox.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ar_snapshots",
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("facility", sa.Text(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("net_ar", sa.Numeric(), nullable=False),
        sa.Column("avg_daily_net_revenue", sa.Numeric(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "source", "id"),
    )
    op.create_index("ar_snapshots_by_day", "ar_snapshots", ["tenant", "facility", "day"], unique=False)
    op.create_table(
        "cells",
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("kpi", sa.Text(), nullable=False),
        sa.Column("facility", sa.Text(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("dimension", sa.Text(), nullable=False),
        sa.Column("numerator", sa.Numeric(), nullable=False),
        sa.Column("denominator", sa.Numeric(), nullable=False),
        sa.Column("sample_size", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "kpi", "facility", "day", "dimension"),
    )
    op.create_table(
        "conflicts",
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("payload_hash", sa.LargeBinary(), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("deliveries", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "first_seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("tenant", "source", "id", "payload_hash"),
    )
    op.create_table(
        "dead_letters",
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("id", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("partition", "offset"),
    )
    op.create_index("dead_letters_by_event", "dead_letters", ["tenant", "source", "id"], unique=False)
    op.create_table(
        "events",
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("facility", sa.Text(), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("payload_hash", sa.LargeBinary(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("duplicates", sa.Integer(), server_default="0", nullable=False),
        sa.Column("retracted", sa.Boolean(), server_default="false", nullable=False),
        sa.PrimaryKeyConstraint("tenant", "source", "id"),
    )
    op.create_table(
        "outages",
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("facility", sa.Text(), nullable=False),
        sa.Column("system", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "source", "id"),
    )
    op.create_index(
        "outages_by_system", "outages", ["tenant", "facility", "system", "started_at"], unique=False
    )
    op.create_table(
        "outbox",
        sa.Column("seq", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_table(
        "readmission_index",
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("patient", sa.Text(), nullable=False),
        sa.Column("facility", sa.Text(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("readmitted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "source", "id"),
    )
    op.create_index("readmission_index_by_patient", "readmission_index", ["tenant", "patient"], unique=False)
    op.create_table(
        "retractions",
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("retracted_id", sa.Text(), nullable=False),
        sa.Column("retraction_id", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "source", "retracted_id"),
    )
    op.create_table(
        "stays",
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("patient", sa.Text(), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "source", "id"),
    )
    op.create_index("stays_by_patient", "stays", ["tenant", "patient"], unique=False)


def downgrade() -> None:
    op.drop_index("stays_by_patient", table_name="stays")
    op.drop_table("stays")
    op.drop_table("retractions")
    op.drop_index("readmission_index_by_patient", table_name="readmission_index")
    op.drop_table("readmission_index")
    op.drop_table("outbox")
    op.drop_index("outages_by_system", table_name="outages")
    op.drop_table("outages")
    op.drop_table("events")
    op.drop_index("dead_letters_by_event", table_name="dead_letters")
    op.drop_table("dead_letters")
    op.drop_table("conflicts")
    op.drop_table("cells")
    op.drop_index("ar_snapshots_by_day", table_name="ar_snapshots")
    op.drop_table("ar_snapshots")
