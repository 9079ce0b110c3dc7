"""One standing discharge per stay, chosen among all its discharges (docs/kpis.md, docs/events.md), and
uptime read without a system counting every system a facility has named (docs/kpis.md, "Uptime").

Stays get the engine's record order (`received`, a sequence taken when the row is written, under the
patient's scope lock) and a `cancelled` mark. A cancelled discharge now keeps its stay row, marked
cancelled: the last received of a stay's discharges governs it, and when that one is cancelled the stay
has no discharge. So the discharges cancelled before this revision (their event marked retracted, their
stay row deleted) get their row back, marked cancelled — not those a retraction withdrew, which are gone
for good; and discharges whose stay's admission a stored cancel names are marked cancelled (their event
retracted, like any cancelled fact). Then every row is numbered in the order its event was recorded
(transaction start, then partition and offset, then key): the best order that is known of them.

Cells are not corrected here: `python -m kpi_engine rebuild --tenant T` corrects each tenant's cells to
the new rules afterwards (docs/operations.md, "Rebuilding KPIs", after the upgrade). But tenant-wide
uptime moves with no cell changing (which systems count changed): every stored uptime cell is announced
again on the change feed, so settlement reconciles each final statement over its (tenant, facility, day)
into an adjustment.

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

_DATA = "e.payload->'data'"
_NAMES_THE_DISCHARGE_OR_ITS_ADMISSION = f"""
    c.tenant = e.tenant AND c.patient = {_DATA}->>'patient_ref' AND c.encounter = {_DATA}->>'encounter_ref'
    AND (
        (c.fact = 'encounter.discharged' AND c.at = e.event_time)
        OR (c.fact = 'encounter.admitted' AND c.at = ({_DATA}->>'admitted_at')::timestamptz)
    )
"""

_KEEP_CANCELLED_DISCHARGES = f"""
INSERT INTO stays (tenant, source, id, patient, type, encounter, facility, at, encounter_class, planned,
    disposition, admitted_at, cancelled)
SELECT e.tenant, e.source, e.id, {_DATA}->>'patient_ref', e.type, {_DATA}->>'encounter_ref', e.facility,
    e.event_time, {_DATA}->>'encounter_class', false, {_DATA}->>'disposition',
    ({_DATA}->>'admitted_at')::timestamptz, true
FROM events e
WHERE e.type = 'encounter.discharged' AND e.retracted
    AND NOT EXISTS (
        SELECT FROM retractions r
        WHERE (r.tenant, r.source, r.retracted_id) = (e.tenant, e.source, e.id) AND NOT r.pending
    )
    AND EXISTS (SELECT FROM cancellations c WHERE {_NAMES_THE_DISCHARGE_OR_ITS_ADMISSION})
ON CONFLICT (tenant, source, id) DO NOTHING
"""

_CANCEL_DISCHARGES_OF_CANCELLED_ADMISSIONS = """
WITH cancelled AS (
    UPDATE stays s SET cancelled = true
    FROM cancellations c
    WHERE s.type = 'encounter.discharged' AND NOT s.cancelled AND c.fact = 'encounter.admitted'
        AND c.tenant = s.tenant AND c.patient = s.patient AND c.encounter = s.encounter
        AND c.at = s.admitted_at
    RETURNING s.tenant, s.source, s.id
)
UPDATE events e SET retracted = true
FROM cancelled
WHERE (e.tenant, e.source, e.id) = (cancelled.tenant, cancelled.source, cancelled.id)
"""

_NUMBER_STORED_STAYS = """
UPDATE stays s SET received = o.n
FROM (
    SELECT s.tenant, s.source, s.id,
        row_number() OVER (ORDER BY e.recorded_at, e.partition, e."offset", s.tenant, s.source, s.id) AS n
    FROM stays s JOIN events e USING (tenant, source, id)
) o
WHERE (s.tenant, s.source, s.id) = (o.tenant, o.source, o.id)
"""

# The engine's change notice of a cell (kpi_engine.adapters.effect_writes), for every uptime cell: the
# KPI engine publishes them after start-up like any other queued notice.
ANNOUNCE_UPTIME_CELLS = """
INSERT INTO outbox (payload)
SELECT jsonb_build_object('kpi', kpi, 'tenant', tenant, 'facility', facility, 'bucket', day::text,
    'dimension', dimension, 'numerator', numerator::text, 'denominator', denominator::text,
    'sample_size', sample_size)
FROM cells
WHERE kpi = 'uptime_pct'
ORDER BY tenant, kpi, facility, day, dimension
"""


def upgrade() -> None:
    # CACHE 1 (the default): numbers are handed out in the order rows are written, across sessions.
    op.execute("CREATE SEQUENCE stays_received AS bigint")
    op.add_column("stays", sa.Column("received", sa.BigInteger(), nullable=True))
    # A constant default fills the stored rows without rewriting the table.
    op.add_column("stays", sa.Column("cancelled", sa.Boolean(), nullable=False, server_default="false"))
    op.execute(_KEEP_CANCELLED_DISCHARGES)
    op.execute(_CANCEL_DISCHARGES_OF_CANCELLED_ADMISSIONS)
    op.execute(_NUMBER_STORED_STAYS)
    op.execute("SELECT setval('stays_received', coalesce(max(received), 0) + 1, false) FROM stays")
    op.execute("ALTER SEQUENCE stays_received OWNED BY stays.received")
    op.alter_column("stays", "received", nullable=False, server_default=sa.text("nextval('stays_received')"))
    op.execute(ANNOUNCE_UPTIME_CELLS)


def downgrade() -> None:
    # The cancelled discharges' rows go: before this revision a cancelled fact had none.
    op.execute("DELETE FROM stays WHERE cancelled")
    op.drop_column("stays", "cancelled")
    op.drop_column("stays", "received")  # drops the sequence it owns
