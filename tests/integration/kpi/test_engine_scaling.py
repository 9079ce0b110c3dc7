"""Two engine instances in one consumer group: no lost update, no deadlock, nothing counted twice."""

from __future__ import annotations

import asyncio
import random
import uuid
from contextlib import AsyncExitStack

from fastapi import FastAPI
from sqlalchemy import func, select, text

from kpi_engine.adapters import tables as t
from kpi_engine.domain.calendar import TenantCalendar
from kpi_engine.domain.computation import compute_cells
from kpi_engine.entrypoints.app import create_app
from tests.integration.kpi.conftest import stored_cells
from tests.integration.kpi.test_engine_service import engine_settings
from tests.support.infrastructure import Infrastructure
from tests.support.publishing import ORIGIN, publish
from tests.support.streams import effective, event_stream
from tests.support.waiting import wait_until
from vr_shared.db import create_engine
from vr_shared.kafka import TopicSpec, ensure_topics


async def test_two_instances_share_the_partitions_and_count_everything_once(
    infrastructure: Infrastructure,
) -> None:
    topic = f"test.events.{uuid.uuid4().hex[:10]}"
    await ensure_topics(infrastructure.kafka_bootstrap_servers, [TopicSpec(topic, 4)])
    settings = engine_settings(infrastructure, topic)
    apps: list[FastAPI] = [create_app(settings), create_app(settings)]
    events = event_stream(seed=11, count=3000)
    redelivered = random.Random(3).sample(events, 300)  # at-least-once: some messages arrive twice
    db = create_engine(infrastructure.database_url, schema=settings.db_schema)
    try:
        async with AsyncExitStack() as stack:
            for app in apps:
                await stack.enter_async_context(app.router.lifespan_context(app))

            async def both_assigned() -> bool:
                # The group has settled: each instance holds partitions, none twice, all of them held.
                held = [{tp.partition for tp in app.state.components.consumer.assignment()} for app in apps]
                return all(held) and not held[0] & held[1] and held[0] | held[1] == {0, 1, 2, 3}

            await wait_until(both_assigned)
            # The stream keeps arriving for a few seconds, as it would in production, so that both
            # members work on it even if the group rebalances once more after settling.
            stream = events + redelivered
            for start in range(0, len(stream), len(stream) // 10 + 1):
                await publish(
                    infrastructure.kafka_bootstrap_servers,
                    topic,
                    stream[start : start + len(stream) // 10 + 1],
                )
                await asyncio.sleep(0.3)

            async def all_recorded() -> bool:  # every event once, and every redelivery seen as one
                async with db.connect() as conn:
                    stored, duplicates = (
                        await conn.execute(
                            select(func.count(), func.coalesce(func.sum(t.events.c.duplicates), 0))
                        )
                    ).one()
                return (stored, duplicates) == (len(events), len(redelivered))

            await wait_until(all_recorded)
            assert all(app.state.event_consumer.processed_batches > 0 for app in apps)
        cells = await stored_cells(db, ORIGIN.tenant)
        assert cells == compute_cells(effective(events), TenantCalendar.of(ORIGIN.timezone))
    finally:
        async with db.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{settings.db_schema}" CASCADE'))
        await db.dispose()
