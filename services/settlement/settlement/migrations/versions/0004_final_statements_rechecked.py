"""Final statements remember whether they were reconciled once more after they were stored: a change
that landed while a period was being finalized is booked then (docs/settlement.md, "Finalize").

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("final_statements", sa.Column("rechecked_at", sa.DateTime(timezone=True), nullable=True))
    # Statements finalized before this revision are taken as rechecked: there is nothing to find again.
    op.execute("UPDATE final_statements SET rechecked_at = finalized_at")
    op.create_index(
        "final_statements_to_recheck",
        "final_statements",
        ["finalized_at"],
        postgresql_where=sa.text("rechecked_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("final_statements_to_recheck", table_name="final_statements")
    op.drop_column("final_statements", "rechecked_at")
