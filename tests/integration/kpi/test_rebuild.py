"""`python -m kpi_engine rebuild`: cells that went wrong (as a definition fixed later leaves them) are
reported and corrected from the stored events, while the engine keeps recording."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from kpi_engine.adapters.migrate import MIGRATIONS
from kpi_engine.adapters.recorder import PostgresRecorder
from kpi_engine.domain.calendar import TenantCalendar
from kpi_engine.domain.cells import Cell, CellKey
from kpi_engine.domain.computation import compute_cells
from kpi_engine.domain.messages import Decoded, Message
from kpi_engine.handlers import decode
from tests.integration.kpi.conftest import stored_cells
from tests.support.infrastructure import Infrastructure
from tests.support.streams import effective, event_stream
from tests.unit.kpi.builders import ev
from tests.unit.kpi.test_readmissions import admit, at, discharge
from vr_shared.events import Event, Origin, encode_event, event_document, validate_event
from vr_shared.migrations import alembic_config

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


async def _migrations(
    engine: AsyncEngine, schema: str, action: Callable[[Config, str], None], to: str
) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: action(alembic_config(sync, schema, MIGRATIONS), to))


async def test_after_the_upgrade_the_rebuild_corrects_cells_recorded_under_the_old_stay_rules(
    kpi_schema: tuple[AsyncEngine, str], infrastructure: Infrastructure
) -> None:
    """Cells recorded before one standing discharge per stay (every discharge counted) and before a
    cancelled admission took its stay with it: migrating (0006) and running the rebuild, as
    docs/operations.md says, brings them to the new rules — and the engine goes on from there."""
    engine, schema = kpi_schema
    origin = Origin(f"t-{uuid.uuid4().hex[:12]}", ZONE)
    stay = admit("R", "1", at("01-01"))
    first, corrected = (
        discharge("R", "1", at("01-01"), at("01-05")),
        discharge("R", "1", at("01-01"), at("01-08")),
    )
    readmission = admit("R", "2", at("02-05"))  # 31 days after Jan 5, 28 after Jan 8
    index = [admit("C", "1", at("01-01")), discharge("C", "1", at("01-01"), at("01-03"))]
    erroneous = [admit("C", "2", at("01-10")), discharge("C", "2", at("01-10"), at("01-12"))]
    cancel = ev(
        "encounter.admission_cancelled",
        at("01-13"),
        patient_ref="C",
        encounter_ref="2",
        admitted_at=at("01-10"),
    )
    # What the old rules recorded, made with today's engine: the first discharge as a stay of its own,
    # the erroneous discharge as not naming the cancelled admission; then stored as they really were.
    apart = _with(first, encounter_ref="1-then")
    unnamed = _with(erroneous[1], admitted_at=at("01-10", "09:00"))
    await record(engine, schema, origin, [stay, apart, *index, erroneous[0], unnamed], 0)
    await record(engine, schema, origin, [corrected, readmission, cancel], 10)
    async with engine.begin() as conn:
        keys = {"t": origin.tenant, "apart": apart.id, "unnamed": unnamed.id, "admitted": at("01-10")}
        await conn.execute(_SAME_STAY, keys)
        await conn.execute(_NAMING_THE_ADMISSION, keys)
    old = await stored_cells(engine, origin.tenant)
    assert _days(old, "alos_days") == {
        date(2026, 1, 3): 2,
        date(2026, 1, 5): 4,
        date(2026, 1, 8): 7,
        date(2026, 1, 12): 2,
    }

    await _migrations(engine, schema, command.downgrade, "0005")
    await _migrations(engine, schema, command.upgrade, "head")
    code, output = await rebuild(infrastructure, schema, "--tenant", origin.tenant)
    assert code == 0 and "corrected:" in output, output

    calendar = TenantCalendar.of(ZONE)
    stored = [stay, first, *index, *erroneous, corrected, readmission, cancel]  # in the order recorded
    cells = await stored_cells(engine, origin.tenant)
    assert cells == compute_cells(stored, calendar)
    assert _days(cells, "alos_days") == {date(2026, 1, 3): 2, date(2026, 1, 8): 7}
    readmitted = {day: cell.numerator for day, cell in _cells(cells, "readmission_rate_30d").items()}
    assert readmitted == {date(2026, 1, 3): 0, date(2026, 1, 8): 1}
    # The engine goes on from the corrected state: the correction retracted, the first discharge stands.
    retraction = ev("event.retracted", at("02-06"), retracted_id=corrected.id, source=corrected.source)
    await record(engine, schema, origin, [retraction], 20)
    assert await stored_cells(engine, origin.tenant) == compute_cells(
        [e for e in stored if e is not corrected], calendar
    )


async def test_the_upgrade_keeps_cancelled_discharges_governing_and_announces_every_uptime_cell(
    kpi_schema: tuple[AsyncEngine, str], infrastructure: Infrastructure
) -> None:
    """Before 0006 a cancelled discharge was forgotten (its stay row deleted), so the one it replaced
    stood again. The upgrade gives it back its row, marked cancelled, in its place in the record order —
    a retracted one stays gone — and queues a change notice for every stored uptime cell, whose
    tenant-wide value the new rule for systems moves without a cell changing."""
    engine, schema = kpi_schema
    origin = Origin(f"t-{uuid.uuid4().hex[:12]}", ZONE)
    stay = admit("R", "1", at("01-01"))
    first, corrected = (
        discharge("R", "1", at("01-01"), at("01-05")),
        discharge("R", "1", at("01-01"), at("01-08")),
    )
    cancel = ev(
        "encounter.discharge_cancelled",
        at("01-09"),
        patient_ref="R",
        encounter_ref="1",
        discharged_at=at("01-08"),
    )
    withdrawn = [admit("W", "1", at("01-01")), discharge("W", "1", at("01-01"), at("01-03"))]
    cancel_withdrawn = ev(
        "encounter.discharge_cancelled",
        at("01-04"),
        patient_ref="W",
        encounter_ref="1",
        discharged_at=at("01-03"),
    )
    retraction = ev("event.retracted", at("01-04"), retracted_id=withdrawn[1].id, source=withdrawn[1].source)
    outages = [
        ev(
            "system.outage",
            at("02-03"),
            facility=facility,
            system=system,
            started_at=at("02-03", "08:00"),
            ended_at=at("02-03", "09:00"),
            planned=False,
        )
        for facility, system in (("north", "ehr"), ("south", "pacs"))
    ]
    await record(engine, schema, origin, [stay, first, corrected, *withdrawn, *outages], 0)
    await record(engine, schema, origin, [cancel, cancel_withdrawn], 10)
    await record(engine, schema, origin, [retraction], 20)
    async with engine.connect() as conn:
        cancelled_before = (await conn.execute(_CANCELLED_STAYS, {"t": origin.tenant})).all()
    assert cancelled_before == [(corrected.id,)]

    await _migrations(engine, schema, command.downgrade, "0005")  # as the old code left them
    async with engine.begin() as conn:
        assert (await conn.execute(_STAY_IDS, {"t": origin.tenant})).scalars().all() == [
            stay.id,
            first.id,
            withdrawn[0].id,
        ]
        await conn.execute(text("DELETE FROM outbox"))
    await _migrations(engine, schema, command.upgrade, "head")

    async with engine.connect() as conn:
        ordered = (await conn.execute(_STAY_IDS_IN_RECORD_ORDER, {"t": origin.tenant})).all()
        notices = (await conn.execute(text("SELECT payload FROM outbox ORDER BY seq"))).scalars().all()
    # The cancelled discharge is back, after the one it replaced; the retracted one is not.
    assert [(r.id, r.cancelled) for r in ordered] == [
        (stay.id, False),
        (first.id, False),
        (corrected.id, True),
        (withdrawn[0].id, False),
    ]
    assert {(n["tenant"], n["facility"], n["kpi"], n["bucket"]) for n in notices} == {
        (origin.tenant, "north", "uptime_pct", "2026-02-03"),
        (origin.tenant, "south", "uptime_pct", "2026-02-03"),
    }
    assert all(set(n) == _NOTICE_FIELDS for n in notices)
    code, output = await rebuild(infrastructure, schema, "--tenant", origin.tenant)
    assert code == 0, output
    cells = await stored_cells(engine, origin.tenant)
    assert _cells(cells, "alos_days") == {}  # R/1's latest word: not discharged; W/1 never discharged
    stored = [stay, first, corrected, *withdrawn[:1], *outages, cancel, cancel_withdrawn]
    assert cells == compute_cells(stored, TenantCalendar.of(ZONE))


_NOTICE_FIELDS = {
    "kpi",
    "tenant",
    "facility",
    "bucket",
    "dimension",
    "numerator",
    "denominator",
    "sample_size",
}
_CANCELLED_STAYS = text("SELECT id FROM stays WHERE tenant = :t AND cancelled")
_STAY_IDS = text("SELECT id FROM stays WHERE tenant = :t ORDER BY id")
_STAY_IDS_IN_RECORD_ORDER = text("SELECT id, cancelled FROM stays WHERE tenant = :t ORDER BY received")


# The first discharge was of stay R/1 and the erroneous one named its cancelled admission all along.
_SAME_STAY = text(
    "WITH e AS (UPDATE events SET payload = jsonb_set(payload, '{data,encounter_ref}', '\"1\"') "
    "WHERE tenant = :t AND id = :apart) UPDATE stays SET encounter = '1' WHERE tenant = :t AND id = :apart"
)
_NAMING_THE_ADMISSION = text(
    "WITH e AS (UPDATE events SET payload = jsonb_set(payload, '{data,admitted_at}', to_jsonb(CAST(:admitted "
    "AS text))) WHERE tenant = :t AND id = :unnamed) "
    "UPDATE stays SET admitted_at = CAST(:admitted AS timestamptz) WHERE tenant = :t AND id = :unnamed"
)


def _with(event: Event, **data: str) -> Event:
    return validate_event({**event_document(event), "data": {**event_document(event)["data"], **data}})


def _cells(cells: dict[CellKey, Cell], kpi: str) -> dict[date, Cell]:
    return {key.day: cell for key, cell in cells.items() if key.kpi == kpi}


def _days(cells: dict[CellKey, Cell], kpi: str) -> dict[date, int]:
    return {day: int(cell.numerator) for day, cell in _cells(cells, kpi).items()}
