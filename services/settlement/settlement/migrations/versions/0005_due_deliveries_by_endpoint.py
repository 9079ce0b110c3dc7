"""Each endpoint's pending deliveries in the order they fall due, so claiming due deliveries reads a few
per endpoint — its work grows with the number of endpoints, never with the backlog (docs/webhooks.md,
"Who sends").

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "webhook_deliveries_due_by_endpoint",
        "webhook_deliveries",
        ["endpoint_id", "next_attempt_at", "id"],
        postgresql_where=sa.text("status = 'pending'"),
    )


def downgrade() -> None:
    op.drop_index("webhook_deliveries_due_by_endpoint", table_name="webhook_deliveries")
