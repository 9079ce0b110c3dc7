"""Settlement events carry the id of the transaction that wrote them, so the feed hands out only events
that no transaction still running can precede, in that order (docs/decisions/0007-commit-order.md).

Events written before this revision get transaction id 0: they were all committed when it ran (the
column is added under an exclusive lock), so they stay first, in their old order, and a cursor handed
out before it still names its place.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A constant default fills the stored rows without rewriting the table; new rows then take their
    # own transaction's id.
    op.execute("ALTER TABLE settlement_events ADD COLUMN xid xid8 NOT NULL DEFAULT '0'")
    op.execute("ALTER TABLE settlement_events ALTER COLUMN xid SET DEFAULT pg_current_xact_id()")
    op.create_index("settlement_events_in_commit_order", "settlement_events", ["xid", "seq"])
    op.drop_index("settlement_events_by_health_system", table_name="settlement_events")
    op.drop_index("settlement_events_by_vendor", table_name="settlement_events")
    op.create_index(
        "settlement_events_by_health_system", "settlement_events", ["health_system", "xid", "seq"]
    )
    op.create_index("settlement_events_by_vendor", "settlement_events", ["vendor", "xid", "seq"])


def downgrade() -> None:
    op.drop_index("settlement_events_by_vendor", table_name="settlement_events")
    op.drop_index("settlement_events_by_health_system", table_name="settlement_events")
    op.drop_index("settlement_events_in_commit_order", table_name="settlement_events")
    op.drop_column("settlement_events", "xid")
    op.create_index("settlement_events_by_health_system", "settlement_events", ["health_system", "seq"])
    op.create_index("settlement_events_by_vendor", "settlement_events", ["vendor", "seq"])
