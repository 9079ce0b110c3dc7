"""Idempotency-Key records: the first answer to each (key, Idempotency-Key), replayed to a retry
(docs/api.md, "Retrying safely").

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotency_records",
        sa.Column("owner", sa.Text(), nullable=False),  # the API key's id
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.LargeBinary(), nullable=False),  # method, target, type and body
        sa.Column("status", sa.Integer()),  # null while the first request is in progress
        sa.Column("content_type", sa.Text()),
        sa.Column("body", sa.LargeBinary()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("owner", "idempotency_key"),
    )
    op.create_index("idempotency_records_by_age", "idempotency_records", ["created_at"])


def downgrade() -> None:
    op.drop_table("idempotency_records")
