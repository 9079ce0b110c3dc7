"""One standing discharge per stay, and a cancelled admission takes its stay's discharges with it
(docs/kpis.md, docs/events.md).

Stays get the engine's record order (`received`, a sequence taken when the row is written, under the
patient's scope lock). Rows recorded before this revision are numbered in the order their events were
recorded (transaction start, then partition and offset, then key): the best order that is known of them.
Discharges whose stay's admission a stored cancel names stop counting, like any cancelled fact (their
event is marked retracted, their stay row deleted).

Cells are not touched here: `python -m kpi_engine rebuild --tenant T` corrects each tenant's cells to
the new rules afterwards (docs/operations.md, "Rebuilding KPIs").

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_NUMBER_STORED_STAYS = """
UPDATE stays s SET received = o.n
FROM (
    SELECT s.tenant, s.source, s.id,
        row_number() OVER (ORDER BY e.recorded_at, e.partition, e."offset", s.tenant, s.source, s.id) AS n
    FROM stays s JOIN events e USING (tenant, source, id)
) o
WHERE (s.tenant, s.source, s.id) = (o.tenant, o.source, o.id)
"""

_STOP_DISCHARGES_OF_CANCELLED_ADMISSIONS = """
WITH stopped AS (
    DELETE FROM stays s USING cancellations c
    WHERE s.type = 'encounter.discharged' AND c.fact = 'encounter.admitted'
        AND c.tenant = s.tenant AND c.patient = s.patient AND c.encounter = s.encounter
        AND c.at = s.admitted_at
    RETURNING s.tenant, s.source, s.id
)
UPDATE events e SET retracted = true
FROM stopped
WHERE (e.tenant, e.source, e.id) = (stopped.tenant, stopped.source, stopped.id)
"""


def upgrade() -> None:
    # CACHE 1 (the default): numbers are handed out in the order rows are written, across sessions.
    op.execute("CREATE SEQUENCE stays_received AS bigint")
    op.add_column("stays", sa.Column("received", sa.BigInteger(), nullable=True))
    op.execute(_NUMBER_STORED_STAYS)
    op.execute("SELECT setval('stays_received', coalesce(max(received), 0) + 1, false) FROM stays")
    op.execute("ALTER SEQUENCE stays_received OWNED BY stays.received")
    op.alter_column("stays", "received", nullable=False, server_default=sa.text("nextval('stays_received')"))
    op.execute(_STOP_DISCHARGES_OF_CANCELLED_ADMISSIONS)


def downgrade() -> None:
    op.drop_column("stays", "received")  # drops the sequence it owns
