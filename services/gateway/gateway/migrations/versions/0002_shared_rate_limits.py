"""Rate limits shared by every gateway instance: one row per key (GCRA's theoretical arrival time).

UNLOGGED: the rows are a few seconds of state, rebuilt by the next requests; writing them to the WAL
would cost every request a flush for nothing a crash could not forgive.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_limits",
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("arrival_s", sa.Float(precision=53), nullable=False),
        sa.Column("asked_s", sa.Float(precision=53), nullable=False),
        sa.Column("granted", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key_id"),
        prefixes=["UNLOGGED"],
    )


def downgrade() -> None:
    op.drop_table("rate_limits")
