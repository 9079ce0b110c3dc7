"""Stays as typed columns (recomputing a patient needs no JSON validation), the scope locks that
replace the tenant-wide lock, retractions still waiting for their event marked as such
(docs/decisions/0005-exactly-once-effect.md), and each tenant's time zone as its events last carried it
(what a rebuild computes local days in).

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

_TYPED_STAYS = """
UPDATE stays SET
    type = payload->>'type',
    encounter = payload->'data'->>'encounter_ref',
    facility = payload->>'facility',
    at = (payload->>'time')::timestamptz,
    encounter_class = payload->'data'->>'encounter_class',
    planned = coalesce((payload->'data'->>'planned')::boolean, false),
    disposition = payload->'data'->>'disposition',
    admitted_at = (payload->'data'->>'admitted_at')::timestamptz
"""


def upgrade() -> None:
    for name, kind in (
        ("type", sa.Text()),
        ("encounter", sa.Text()),
        ("facility", sa.Text()),
        ("at", sa.DateTime(timezone=True)),
        ("encounter_class", sa.Text()),
        ("planned", sa.Boolean()),
        ("disposition", sa.Text()),
        ("admitted_at", sa.DateTime(timezone=True)),
    ):
        op.add_column("stays", sa.Column(name, kind, nullable=True))
    op.execute(_TYPED_STAYS)
    for name in ("type", "encounter", "facility", "at", "encounter_class", "planned"):
        op.alter_column("stays", name, nullable=False)
    op.drop_column("stays", "payload")
    op.add_column("retractions", sa.Column("pending", sa.Boolean(), nullable=False, server_default=sa.true()))
    op.execute(
        "UPDATE retractions t SET pending = false WHERE EXISTS (SELECT 1 FROM events e "
        "WHERE (e.tenant, e.source, e.id) = (t.tenant, t.source, t.retracted_id))"
    )
    op.create_index("retractions_pending", "retractions", ["tenant"], postgresql_where=sa.text("pending"))
    op.create_table(
        "tenant_zones",
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("timezone", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("tenant"),
    )
    op.create_table(
        "scope_locks",
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("batches", sa.BigInteger(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("tenant", "scope"),
        postgresql_with={"fillfactor": 70},
    )


def downgrade() -> None:
    op.drop_table("scope_locks")
    op.drop_table("tenant_zones")
    op.drop_index("retractions_pending", table_name="retractions")
    op.drop_column("retractions", "pending")
    op.add_column("stays", sa.Column("payload", sa.dialects.postgresql.JSONB(), nullable=True))
    op.execute(
        "UPDATE stays s SET payload = e.payload FROM events e "
        "WHERE (e.tenant, e.source, e.id) = (s.tenant, s.source, s.id)"
    )
    op.alter_column("stays", "payload", nullable=False)
    for name in (
        "type",
        "encounter",
        "facility",
        "at",
        "encounter_class",
        "planned",
        "disposition",
        "admitted_at",
    ):
        op.drop_column("stays", name)
