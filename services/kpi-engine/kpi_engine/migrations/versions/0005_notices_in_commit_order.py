"""Change notices carry the id of the transaction that queued them, so the outbox hands out only those
that no transaction still running can precede (docs/decisions/0007-commit-order.md), and when it began.

Notices queued before this revision get transaction id 0: they were all committed when it ran (the
column is added under an exclusive lock), so they go out first, in their old order.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A constant default fills the queued rows without rewriting the table; new rows then take their
    # own transaction's id.
    op.execute("ALTER TABLE outbox ADD COLUMN xid xid8 NOT NULL DEFAULT '0'")
    op.execute("ALTER TABLE outbox ALTER COLUMN xid SET DEFAULT pg_current_xact_id()")
    op.create_index("outbox_in_commit_order", "outbox", ["xid", "seq"])
    # When the notice's transaction began: the age of the first one waiting is what operators watch.
    op.execute("ALTER TABLE outbox ADD COLUMN queued_at timestamptz NOT NULL DEFAULT now()")


def downgrade() -> None:
    op.drop_index("outbox_in_commit_order", table_name="outbox")
    op.drop_column("outbox", "queued_at")
    op.drop_column("outbox", "xid")
