"""`python -m kpi_engine rebuild`: cells that went wrong (as a definition fixed later leaves them) are
reported and corrected from the stored events, while the engine keeps recording."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from kpi_engine.adapters.recorder import PostgresRecorder
from kpi_engine.domain.calendar import TenantCalendar
from kpi_engine.domain.computation import compute_cells
from kpi_engine.domain.messages import Decoded, Message
from kpi_engine.handlers import decode
from tests.integration.kpi.conftest import stored_cells
from tests.support.infrastructure import Infrastructure
from tests.support.streams import effective, event_stream
from vr_shared.events import Event, Origin, encode_event, event_document

ZONE = "America/New_York"


async def record(engine: AsyncEngine, schema: str, origin: Origin, events: list[Event], first: int) -> None:
    recorder = PostgresRecorder(engine, schema)
    for start in range(0, len(events), 500):
        messages = [
            Message(0, first + start + i, encode_event(origin, event_document(e)))
            for i, e in enumerate(events[start : start + 500])
        ]
        decoded = [d for d in (decode(m) for m in messages) if isinstance(d, Decoded)]
        await recorder.record(decoded, [], datetime.now(UTC))


async def rebuild(infrastructure: Infrastructure, schema: str, *arguments: str) -> tuple[int, str]:
    environment = {**os.environ, "DATABASE_URL": infrastructure.database_url, "VR_DB_SCHEMA": schema}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kpi_engine",
        "rebuild",
        *arguments,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode()


async def spoil(engine: AsyncEngine, tenant: str) -> None:
    """What a wrong definition leaves: an additive cell off by one, an uptime cell gone, and a
    readmission outcome flipped in the index and its cell alike (consistently wrong)."""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE cells SET numerator = numerator + 1 WHERE (tenant, kpi, facility, day) IN "
                "(SELECT tenant, kpi, facility, day FROM cells "
                "WHERE tenant = :t AND kpi = 'clean_claim_rate' ORDER BY day LIMIT 1)"
            ),
            {"t": tenant},
        )
        await conn.execute(
            text(
                "DELETE FROM cells WHERE (tenant, kpi, facility, day, dimension) IN (SELECT tenant, kpi, "
                "facility, day, dimension FROM cells WHERE tenant = :t AND kpi = 'uptime_pct' "
                "ORDER BY day LIMIT 1)"
            ),
            {"t": tenant},
        )
        flipped = (
            await conn.execute(
                text(
                    "UPDATE readmission_index SET readmitted = NOT readmitted WHERE (tenant, source, id) IN "
                    "(SELECT tenant, source, id FROM readmission_index WHERE tenant = :t "
                    "ORDER BY day LIMIT 1) RETURNING facility, day, readmitted"
                ),
                {"t": tenant},
            )
        ).one()
        await conn.execute(
            text(
                "UPDATE cells SET numerator = numerator + :d WHERE tenant = :t "
                "AND kpi = 'readmission_rate_30d' AND facility = :f AND day = :day"
            ),
            {"d": 1 if flipped.readmitted else -1, "t": tenant, "f": flipped.facility, "day": flipped.day},
        )


async def test_rebuild_reports_and_corrects_what_a_wrong_definition_left_while_the_engine_records(
    kpi_schema: tuple[AsyncEngine, str], infrastructure: Infrastructure
) -> None:
    engine, schema = kpi_schema
    origin = Origin(f"t-{uuid.uuid4().hex[:12]}", ZONE)
    events = event_stream(seed=29, count=3000, days=90, patients=150)
    first, later = events[:2000], events[2000:]
    await record(engine, schema, origin, first, 0)
    await spoil(engine, origin.tenant)

    code, dry_run = await rebuild(infrastructure, schema, "--tenant", origin.tenant, "--dry-run")
    assert code == 1, dry_run
    assert "3 differ from the stored ones" in dry_run, dry_run
    assert "clean_claim_rate" in dry_run and "uptime_pct" in dry_run and "readmission_rate_30d" in dry_run

    # The engine goes on recording while the rebuild reads and corrects.
    (code, output), _ = await asyncio.gather(
        rebuild(infrastructure, schema, "--tenant", origin.tenant),
        record(engine, schema, origin, later, 2000),
    )
    assert "read " in output and "corrected:" in output, output
    calendar = TenantCalendar.of(ZONE)
    assert await stored_cells(engine, origin.tenant) == compute_cells(effective(events), calendar)
    # The index rows were corrected too: the engine's next readmission deltas start from the truth.
    code, after = await rebuild(infrastructure, schema, "--tenant", origin.tenant, "--dry-run")
    assert code == 0 and "0 differ from the stored ones" in after, after


async def test_rebuild_of_one_kpi_and_of_an_unknown_tenant(
    kpi_schema: tuple[AsyncEngine, str], infrastructure: Infrastructure
) -> None:
    engine, schema = kpi_schema
    origin = Origin(f"t-{uuid.uuid4().hex[:12]}", ZONE)
    await record(engine, schema, origin, event_stream(seed=31, count=400, days=30, patients=40), 0)
    await spoil(engine, origin.tenant)
    async with engine.connect() as conn:
        last_notice = (await conn.execute(text("SELECT max(seq) FROM outbox"))).scalar_one()
    code, output = await rebuild(infrastructure, schema, "--tenant", origin.tenant, "--kpi", "uptime_pct")
    assert code == 0, output
    assert "1 differ from the stored ones" in output and "clean_claim_rate" not in output, output
    async with engine.connect() as conn:
        notices = (
            await conn.execute(text("SELECT payload FROM outbox WHERE seq > :s"), {"s": last_notice})
        ).all()
    # The corrected cell's change notice is queued for subscribers (published by the engine's loop).
    assert [n.payload["kpi"] for n in notices] == ["uptime_pct"]
    code, output = await rebuild(infrastructure, schema, "--tenant", "nobody")
    assert code == 2 and "no events recorded for tenant 'nobody'" in output, output
