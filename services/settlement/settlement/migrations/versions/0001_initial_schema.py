"""Initial schema: versioned contracts, period inputs, final statements, adjustments, audit log.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "adjustments",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("contract_id", sa.Text(), nullable=False),
        sa.Column("period", sa.Text(), nullable=False),
        sa.Column("total_delta", sa.Numeric(), nullable=False),
        sa.Column("lines", postgresql.JSONB(astext_type=Text()), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("statement", postgresql.JSONB(astext_type=Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("adjustments_by_statement", "adjustments", ["contract_id", "period", "id"], unique=False)
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("contract_id", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("period", sa.Text(), nullable=True),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("previous", postgresql.JSONB(astext_type=Text()), nullable=True),
        sa.Column("current", postgresql.JSONB(astext_type=Text()), nullable=True),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index("audit_log_by_contract", "audit_log", ["contract_id", "seq"], unique=False)
    op.create_table(
        "contract_versions",
        sa.Column("contract_id", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("document", postgresql.JSONB(astext_type=Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("contract_id", "version"),
    )
    op.create_table(
        "contracts",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("health_system", sa.Text(), nullable=False),
        sa.Column("vendor", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("contracts_by_health_system", "contracts", ["health_system"], unique=False)
    op.create_index("contracts_by_vendor", "contracts", ["vendor"], unique=False)
    op.create_table(
        "final_statements",
        sa.Column("contract_id", sa.Text(), nullable=False),
        sa.Column("period", sa.Text(), nullable=False),
        sa.Column("contract_version", sa.Integer(), nullable=False),
        sa.Column("statement", postgresql.JSONB(astext_type=Text()), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("basis", postgresql.JSONB(astext_type=Text()), nullable=False),
        sa.Column("health_system", sa.Text(), nullable=False),
        sa.Column("facilities", postgresql.ARRAY(Text()), nullable=False),
        sa.Column("kpis", postgresql.ARRAY(Text()), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=True),
        sa.Column(
            "finalized_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("finalized_by", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("contract_id", "period"),
    )
    op.create_index(
        "final_statements_by_scope", "final_statements", ["health_system", "period_start"], unique=False
    )
    op.create_table(
        "period_inputs",
        sa.Column("contract_id", sa.Text(), nullable=False),
        sa.Column("period", sa.Text(), nullable=False),
        sa.Column("inputs", postgresql.JSONB(astext_type=Text()), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("contract_id", "period"),
    )


def downgrade() -> None:
    op.drop_table("period_inputs")
    op.drop_index("final_statements_by_scope", table_name="final_statements")
    op.drop_table("final_statements")
    op.drop_index("contracts_by_vendor", table_name="contracts")
    op.drop_index("contracts_by_health_system", table_name="contracts")
    op.drop_table("contracts")
    op.drop_table("contract_versions")
    op.drop_index("audit_log_by_contract", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index("adjustments_by_statement", table_name="adjustments")
    op.drop_table("adjustments")
