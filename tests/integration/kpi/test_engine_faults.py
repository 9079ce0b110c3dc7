"""Crash and database faults while consuming (docs/testing.md): nothing lost, nothing counted twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from devstack.ports import free_port
from devstack.postgres import running_postgres
from kpi_engine.adapters import tables as t
from kpi_engine.domain.calendar import TenantCalendar
from kpi_engine.domain.computation import compute_cells
from kpi_engine.entrypoints.app import create_app
from tests.integration.kpi.conftest import stored_cells
from tests.integration.kpi.test_engine_service import engine_settings
from tests.support.identity import GATEWAY_PUBLIC_KEY, SETTLEMENT_PUBLIC_KEY
from tests.support.infrastructure import Infrastructure
from tests.support.publishing import ORIGIN, publish
from tests.support.streams import effective, event_stream
from tests.support.waiting import wait_until
from vr_shared.db import create_engine
from vr_shared.kafka import TopicSpec, ensure_topics

pytestmark = pytest.mark.fault
CALENDAR = TenantCalendar.of(ORIGIN.timezone)


async def _counts(db: AsyncEngine) -> tuple[int, int]:
    try:
        async with db.connect() as conn:
            stored, duplicates = (
                await conn.execute(select(func.count(), func.coalesce(func.sum(t.events.c.duplicates), 0)))
            ).one()
        return int(stored), int(duplicates)
    except Exception:  # the schema may not exist yet, or the database may be down
        return -1, -1


def _engine_process(settings: object, port: int) -> subprocess.Popen[bytes]:
    values = settings.model_dump()  # type: ignore[attr-defined]
    env = {
        **os.environ,
        "DATABASE_URL": values["database_url"],
        "KAFKA_BOOTSTRAP_SERVERS": values["kafka_bootstrap_servers"],
        "VR_IDENTITY_PUBLIC_KEY": GATEWAY_PUBLIC_KEY,
        "VR_SETTLEMENT_PUBLIC_KEY": SETTLEMENT_PUBLIC_KEY,
        "VR_DB_SCHEMA": values["db_schema"],
        "VR_EVENTS_TOPIC": values["events_topic"],
        "VR_DEAD_LETTER_TOPIC": values["dead_letter_topic"],
        "VR_UPDATES_TOPIC": values["updates_topic"],
        "VR_CONSUMER_GROUP": values["consumer_group"],
        "VR_SESSION_TIMEOUT_MS": "6000",
        "VR_BATCH_MAX_RECORDS": "100",
        "VR_HTTP_PORT": str(port),
        "VR_LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen([sys.executable, "-m", "kpi_engine"], env=env)


async def test_sigkill_mid_stream_then_restart_equals_the_from_scratch_computation(
    infrastructure: Infrastructure,
) -> None:
    topic = f"test.events.{uuid.uuid4().hex[:10]}"
    await ensure_topics(infrastructure.kafka_bootstrap_servers, [TopicSpec(topic, 4)])
    settings = engine_settings(infrastructure, topic)
    events = event_stream(seed=21, count=6000)
    await publish(infrastructure.kafka_bootstrap_servers, topic, events)
    db = create_engine(infrastructure.database_url, schema=settings.db_schema)
    process = _engine_process(settings, free_port())
    try:

        async def part_recorded() -> bool:
            return (await _counts(db))[0] >= 1000

        await wait_until(part_recorded)
        process.send_signal(signal.SIGKILL)  # no shutdown, no offset commit, mid-batch
        process.wait(timeout=10)
        assert (await _counts(db))[0] < len(events), "the kill came too late to be mid-stream"
        process = _engine_process(settings, free_port())

        async def all_recorded() -> bool:
            return (await _counts(db))[0] == len(events)

        await wait_until(all_recorded)
        await asyncio.sleep(1)  # anything still replaying must not change the result
        assert await _counts(db) == (len(events), 0)  # replays are not duplicates
        assert await stored_cells(db, ORIGIN.tenant) == compute_cells(effective(events), CALENDAR)
    finally:
        process.kill()
        process.wait(timeout=10)
        async with db.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{settings.db_schema}" CASCADE'))
        await db.dispose()


async def test_database_stopped_and_restarted_while_consuming_loses_and_doubles_nothing(
    infrastructure: Infrastructure,
) -> None:
    topic = f"test.events.{uuid.uuid4().hex[:10]}"
    await ensure_topics(infrastructure.kafka_bootstrap_servers, [TopicSpec(topic, 4)])
    first, second = event_stream(seed=31, count=2000), event_stream(seed=32, count=2000)
    with running_postgres() as database:
        settings = engine_settings(infrastructure, topic).model_copy(
            update={"database_url": database.url, "batch_max_records": 100, "retry_backoff_seconds": 0.2}
        )
        db = create_engine(database.url, schema=settings.db_schema)
        app = create_app(settings)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kpi-engine") as client,
        ):
            await publish(infrastructure.kafka_bootstrap_servers, topic, first)

            async def some_recorded() -> bool:
                return (await _counts(db))[0] > 0

            await wait_until(some_recorded)
            database.stop()
            await publish(infrastructure.kafka_bootstrap_servers, topic, second)

            async def not_ready() -> bool:
                return (await client.get("/readyz")).status_code == 503

            await wait_until(not_ready, timeout_s=30)
            assert (await client.get("/readyz")).json()["checks"]["database"] == "unreachable"
            # Every database step of the loop waits the outage out; none of them ends the consumer.
            draining = asyncio.create_task(app.state.event_consumer.drain_outbox())
            await asyncio.sleep(2)  # the consumer keeps retrying the same batch meanwhile
            assert not draining.done()
            database.start()
            await asyncio.wait_for(draining, timeout=30)

            async def all_recorded() -> bool:
                return (await _counts(db))[0] == len(first) + len(second)

            await wait_until(all_recorded)
            assert (await client.get("/readyz")).status_code == 200
        assert await _counts(db) == (len(first) + len(second), 0)
        assert await stored_cells(db, ORIGIN.tenant) == compute_cells(effective(first + second), CALENDAR)
        await db.dispose()
