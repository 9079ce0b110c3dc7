"""KPI engine throughput against a raw baseline, on the same machine, in one run.

* engine: one process consuming `N` events from the topic and recording them with every KPI effect
  (batch transaction, cells, change notices), offsets committed — timed from the first fetched batch
  to the last committed one.
* baseline: consuming the same messages and COPYing them into a table (tenant, source, id, payload),
  the least any consumer that keeps the events must do.
* floor: the baseline plus what any engine that trusts no message must add before a single KPI effect —
  validate each event against the platform's schema (pydantic-core, as the engine does) and COPY it
  into a table keyed on tenant + source + id. It bounds what any validating engine in one Python
  process can reach on this machine.

Broker and PostgreSQL: KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL if set, else local ones started here.
"""

from __future__ import annotations

import asyncio
import hashlib
import statistics
import time
import uuid

import asyncpg
import orjson
from aiokafka import TopicPartition

from bench.infra import GATEWAY_PUBLIC_KEY, SETTLEMENT_PUBLIC_KEY, broker_servers, database_url
from bench.report import machine, today, write_section
from bench.support import spread
from kpi_engine import bootstrap
from kpi_engine.adapters.migrate import migrate
from kpi_engine.config import Settings
from kpi_engine.domain.messages import Message
from kpi_engine.entrypoints.app import event_consumer
from tests.support.publishing import publish
from tests.support.streams import event_stream
from vr_shared.events import decode_event
from vr_shared.kafka import TopicSpec, create_consumer, ensure_topics
from vr_shared.runtime import settle_heap

EVENTS = 40_000
PARTITIONS = 12
ROUNDS = 3


async def measure_baseline(kafka: str, database: str, topic: str) -> float:
    """Consume every message and COPY it into a table: events/s."""
    consumer = create_consumer(kafka, group_id=None, client_id="bench-baseline")
    await consumer.start()
    connection = await asyncpg.connect(database)
    table = f"bench_raw_{uuid.uuid4().hex[:8]}"
    await connection.execute(f"CREATE TABLE {table} (tenant text, source text, id text, payload jsonb)")
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        copied, started = 0, None
        while copied < EVENTS:
            batch = await consumer.getmany(timeout_ms=1000, max_records=2000)
            started = started or time.perf_counter()
            rows = []
            for records in batch.values():
                for record in records:
                    document = orjson.loads(record.value)
                    rows.append(
                        (document["tenant"], document["source"], document["id"], record.value.decode())
                    )
            await connection.copy_records_to_table(table, records=rows)
            copied += len(rows)
        return copied / (time.perf_counter() - (started or time.perf_counter()))
    finally:
        await connection.execute(f"DROP TABLE {table}")
        await connection.close()
        await consumer.stop()


async def measure_floor(kafka: str, database: str, topic: str) -> float:
    """Consume, validate every event, COPY into a keyed events table; no KPI effects: events/s."""
    consumer = create_consumer(kafka, group_id=None, client_id="bench-floor")
    await consumer.start()
    connection = await asyncpg.connect(database)
    table = f"bench_floor_{uuid.uuid4().hex[:8]}"
    await connection.execute(
        f"""CREATE TABLE {table} (tenant text, source text, id text, type text, facility text,
            event_time timestamptz, payload jsonb, payload_hash bytea, partition int, "offset" bigint,
            PRIMARY KEY (tenant, source, id))"""
    )
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        copied, started = 0, None
        while copied < EVENTS:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            started = started or time.perf_counter()
            rows = []
            for tp, records in batch.items():
                for record in records:
                    origin, event = decode_event(record.value or b"")
                    rows.append(
                        (
                            origin.tenant,
                            event.source,
                            event.id,
                            event.type,
                            event.facility,
                            event.time,
                            record.value.decode(),
                            hashlib.sha256(record.value).digest(),
                            tp.partition,
                            record.offset,
                        )
                    )
            async with connection.transaction():
                await connection.copy_records_to_table(table, records=rows)
            copied += len(rows)
        return copied / (time.perf_counter() - (started or time.perf_counter()))
    finally:
        await connection.execute(f"DROP TABLE {table}")
        await connection.close()
        await consumer.stop()


async def measure_engine(kafka: str, database: str, topic: str) -> float:
    """The engine's own batch path (decode → record → notices → commit): events/s."""
    suffix = uuid.uuid4().hex[:8]
    settings = Settings.model_validate(
        {
            "kafka_bootstrap_servers": kafka,
            "database_url": database,
            "identity_public_key": GATEWAY_PUBLIC_KEY,
            "settlement_public_key": SETTLEMENT_PUBLIC_KEY,
            "db_schema": f"bench_{suffix}",
            "events_topic": topic,
            "dead_letter_topic": f"bench.dlq.{suffix}",
            "updates_topic": f"bench.updates.{suffix}",
            "consumer_group": f"bench-{suffix}",
            "session_timeout_ms": 6000,
        }
    )
    components = bootstrap.build(settings)
    engine_loop = event_consumer(components, settings)
    await migrate(components.engine, settings.db_schema)
    await ensure_topics(kafka, components.topics)
    await components.producer.start()
    await components.consumer.start()
    try:
        processed, started = 0, None
        while processed < EVENTS:
            batch = await components.consumer.getmany(timeout_ms=1000, max_records=settings.batch_max_records)
            if not batch:
                continue
            started = started or time.perf_counter()
            messages = [
                Message(tp.partition, r.offset, r.value or b"") for tp, rs in batch.items() for r in rs
            ]
            await engine_loop.handle(messages)
            await components.consumer.commit({tp: rs[-1].offset + 1 for tp, rs in batch.items()})
            processed += len(messages)
        return processed / (time.perf_counter() - (started or time.perf_counter()))
    finally:
        await components.consumer.stop()
        await components.producer.stop()
        async with components.engine.begin() as conn:
            from sqlalchemy import text

            await conn.execute(text(f'DROP SCHEMA "{settings.db_schema}" CASCADE'))
        await components.engine.dispose()


async def main() -> None:
    events = event_stream(seed=101, count=EVENTS, days=365, patients=5000)
    engine_rates, baseline_rates, floor_rates = [], [], []
    with broker_servers() as kafka, database_url() as database:
        topic = f"bench.events.{uuid.uuid4().hex[:8]}"
        await ensure_topics(kafka, [TopicSpec(topic, PARTITIONS)])
        await publish(kafka, topic, events)
        # The generator's objects would otherwise sit in every full collection of every path measured;
        # the service itself settles its heap the same way after start-up.
        del events
        settle_heap()
        for _ in range(ROUNDS):
            baseline_rates.append(await measure_baseline(kafka, database, topic))
            floor_rates.append(await measure_floor(kafka, database, topic))
            engine_rates.append(await measure_engine(kafka, database, topic))
    baseline = statistics.median(baseline_rates)
    ratio = statistics.median(engine_rates) / baseline
    floor_ratio = statistics.median(floor_rates) / baseline
    engine_to_floor = statistics.median(engine_rates) / statistics.median(floor_rates)
    verdict = "meets" if ratio >= 0.5 else "misses"
    body = f"""## KPI engine throughput

{today()} — {machine()}. {EVENTS:,} realistic events (stays and readmissions, claims, payments, costs,
medication, outages, A/R snapshots, retractions) over a year for 5,000 patients, {PARTITIONS} partitions.
Run: `make bench` (`python -m bench.kpi_engine`). Median of {ROUNDS} interleaved rounds (range in brackets).

| path | events/s |
|---|---:|
| engine, one process: topic → one transaction per batch, all KPI effects | {spread(engine_rates)} |
| baseline: consume the same messages and COPY them into a table | {spread(baseline_rates)} |
| floor: baseline + validate each event + COPY into a keyed table; no KPI work | {spread(floor_rates)} |

* **engine / baseline = {ratio:.2f}** — target ≥ 0.5: {verdict} the target.
* floor / baseline = {floor_ratio:.2f}: validating the events and keying the table, before any KPI
  effect, already costs this much of the baseline's rate.
* engine / floor = {engine_to_floor:.2f}.
"""
    write_section("kpi-engine-throughput", body)
    print(body)


if __name__ == "__main__":
    asyncio.run(main())
