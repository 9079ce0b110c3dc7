"""The shared Kafka and database helpers against the real broker and PostgreSQL."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from tests.support.infrastructure import Infrastructure
from vr_shared.db import create_engine, database_reachable, ensure_schema
from vr_shared.kafka import TopicSpec, create_consumer, ensure_topics


async def test_ensure_topics_creates_with_the_given_partitions_and_is_idempotent(
    infrastructure: Infrastructure,
) -> None:
    name = f"test.topic.{uuid.uuid4().hex[:8]}"
    await ensure_topics(infrastructure.kafka_bootstrap_servers, [TopicSpec(name, 6)])
    await ensure_topics(infrastructure.kafka_bootstrap_servers, [TopicSpec(name, 6)])  # second call: no error
    consumer = create_consumer(infrastructure.kafka_bootstrap_servers, name, group_id=None)
    await consumer.start()
    try:
        assert consumer.partitions_for_topic(name) == set(range(6))
    finally:
        await consumer.stop()


async def test_engine_uses_its_schema_first(infrastructure: Infrastructure) -> None:
    schema = f"test_{uuid.uuid4().hex[:8]}"
    admin = create_engine(infrastructure.database_url)
    await ensure_schema(admin, schema)
    await admin.dispose()
    engine = create_engine(infrastructure.database_url, schema=schema)
    try:
        assert await database_reachable(engine)
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE marker (value numeric NOT NULL)"))
            await conn.execute(text("INSERT INTO marker VALUES (0.10), (0.20)"))
            total = (await conn.execute(text(f"SELECT sum(value) FROM {schema}.marker"))).scalar_one()
            assert str(total) == "0.30"  # NUMERIC: exact decimals, as money needs
            assert (await conn.execute(text("SELECT current_schema()"))).scalar_one() == schema
    finally:
        await engine.dispose()


async def test_unreachable_database_is_reported_not_raised() -> None:
    engine = create_engine("postgresql://postgres@127.0.0.1:1/postgres")
    try:
        assert await database_reachable(engine, timeout_s=2) is False
    finally:
        await engine.dispose()
