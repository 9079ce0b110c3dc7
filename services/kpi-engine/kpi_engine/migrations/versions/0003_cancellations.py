"""Cancelled admissions and discharges (HL7 A11 / A13), matched to the facts they name by time.

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
        "cancellations",
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("patient", sa.Text(), nullable=False),
        sa.Column("encounter", sa.Text(), nullable=False),
        sa.Column("fact", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "patient", "encounter", "fact", "at"),
    )


def downgrade() -> None:
    op.drop_table("cancellations")
