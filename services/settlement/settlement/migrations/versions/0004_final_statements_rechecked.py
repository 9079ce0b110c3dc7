"""Final statements remember whether a reconciliation is pending: once more after they were stored (a
change that landed while a period was being finalized is booked then), after an input put, after a
reconciliation that had to wait for readings to mature or that failed (docs/settlement.md, "Finalize",
"Adjustments"). The period watch does every pending one.

`recheck_requests` counts the requests: a recheck marks the statement done only when no request came
after it read the data (one that came meanwhile may not be in what it read).

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
    op.add_column(
        "final_statements",
        sa.Column("recheck_requests", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
    )
    op.add_column("final_statements", sa.Column("recheck_reason", sa.Text(), nullable=True))
    # Statements finalized before this revision are taken as rechecked — unless their basis holds a
    # provisional reading (finalize did not refuse those then). A late change to such a period found its
    # recomputation provisional, booked nothing, and no notice comes when the reading matures: those stay
    # pending, so the period watch books the difference once every reading is mature.
    op.execute(
        """UPDATE final_statements SET
            rechecked_at = CASE WHEN basis->'kpi_readings' @> '[{"status": "provisional"}]'
                THEN NULL ELSE finalized_at END,
            recheck_reason = CASE WHEN basis->'kpi_readings' @> '[{"status": "provisional"}]'
                THEN 'data changed after finalization, on readings that were provisional' END"""
    )
    op.create_index(
        "final_statements_to_recheck",
        "final_statements",
        ["finalized_at"],
        postgresql_where=sa.text("rechecked_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("final_statements_to_recheck", table_name="final_statements")
    op.drop_column("final_statements", "recheck_reason")
    op.drop_column("final_statements", "recheck_requests")
    op.drop_column("final_statements", "rechecked_at")
