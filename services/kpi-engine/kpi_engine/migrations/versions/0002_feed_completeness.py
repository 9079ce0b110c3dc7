"""Feed completeness (docs/completeness.md): the declarations pipelines send (`feed.complete`) and what
each facility's feeds have delivered per local day.

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
        "feed_declarations",
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("facility", sa.Text(), nullable=False),
        sa.Column("feed", sa.Text(), nullable=False),
        sa.Column("through", sa.DateTime(timezone=True), nullable=False),
        sa.Column("declared_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "source", "id"),
    )
    op.create_index(
        "feed_declarations_by_feed", "feed_declarations", ["tenant", "facility", "feed", "through"]
    )
    op.create_table(
        "feed_activity",
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("facility", sa.Text(), nullable=False),
        sa.Column("feed", sa.Text(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("newest_event_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "facility", "feed", "day"),
    )


def downgrade() -> None:
    op.drop_table("feed_activity")
    op.drop_index("feed_declarations_by_feed", table_name="feed_declarations")
    op.drop_table("feed_declarations")
