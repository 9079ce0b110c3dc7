"""KPI engine throughput, in one run, against what bounds it on the same machine (docs/benchmarks.md).

1. engine / floor, in this process, interleaved rounds:
   * engine: consuming `N` events from the topic and recording them with every KPI effect (batch
     transactions, cells, change notices), offsets committed — from the first fetched batch to the last
     committed one;
   * floor: consuming the same messages, decoding each with the engine's own decoder (the catalogue's
     validation and the canonical hash) and COPYing them into a table keyed on tenant + source + id —
     what any engine that trusts no message must do before a single KPI effect;
   * baseline: consuming and COPYing them unvalidated, the least any consumer that keeps events does.
2. engine / ingest: events/s of each alone, as processes — ingest over HTTP (bench.ingest's load) and
   one `python -m kpi_engine` recording a topic already filled.
3. two engine processes on one tenant against one: events/s to fully recorded, the time their
   connections waited on locks (sampled from pg_stat_activity), and the CPU accounting (/proc).
4. backfill: a year of 1,000,000 events for 10 facilities posted to ingest; from the first 202 to the
   last event recorded by the engine.

Broker and PostgreSQL: KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL if set, else local ones started here.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock

import asyncpg
import httpx
import orjson
from aiokafka import TopicPartition

from bench import ingest as ingest_bench
from bench.engine_processes import LOCK_SAMPLE_S, EngineRun, engine_group, until_recorded, wait_ready
from bench.infra import (
    GATEWAY_PUBLIC_KEY,
    SETTLEMENT_PUBLIC_KEY,
    broker_servers,
    database_url,
    identity_token,
)
from bench.report import machine, today, write_section
from bench.support import spread
from kpi_engine import bootstrap
from kpi_engine.adapters.migrate import migrate
from kpi_engine.config import Settings
from kpi_engine.domain.messages import Decoded, Message
from kpi_engine.entrypoints.app import event_consumer
from kpi_engine.handlers import decode
from tests.support.publishing import ORIGIN, publish
from tests.support.streams import event_stream
from vr_shared.events import Event, event_document
from vr_shared.identity import Identity
from vr_shared.kafka import TopicSpec, create_consumer, ensure_topics
from vr_shared.roles import Role
from vr_shared.runtime import collector_paused, settle_heap

EVENTS = 40_000
GROUP_EVENTS = 100_000
GROUP_ROUNDS = 3
PARTITIONS = 12
ROUNDS = 3
BACKFILL_EVENTS = 1_000_000
BACKFILL_FACILITIES = tuple(f"facility-{n:02d}" for n in range(1, 11))
BACKFILL_INSTANCES = 2
# Every path consumes as the engine does: its batch size and partition fetch size.
BATCH = Settings.model_fields["batch_max_records"].default
FETCH_BYTES = Settings.model_fields["fetch_max_partition_bytes"].default


async def measure_baseline(kafka: str, database: str, topic: str) -> float:
    """Consume every message and COPY it into a table: events/s."""
    consumer = create_consumer(
        kafka, group_id=None, client_id="bench-baseline", max_partition_fetch_bytes=FETCH_BYTES
    )
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
            batch = await consumer.getmany(timeout_ms=1000, max_records=BATCH)
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
    """Consume, decode every event as the engine does, COPY into a keyed events table; no KPI effects:
    events/s."""
    consumer = create_consumer(
        kafka, group_id=None, client_id="bench-floor", max_partition_fetch_bytes=FETCH_BYTES
    )
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
            batch = await consumer.getmany(timeout_ms=1000, max_records=BATCH)
            started = started or time.perf_counter()
            rows = []
            with collector_paused():  # as the engine runs a batch
                for tp, records in batch.items():
                    for record in records:
                        decoded = decode(Message(tp.partition, record.offset, record.value or b""))
                        assert isinstance(decoded, Decoded), decoded
                        event = decoded.event
                        rows.append(
                            (
                                decoded.origin.tenant,
                                event.source,
                                event.id,
                                event.type,
                                event.facility,
                                event.time,
                                record.value.decode(),
                                decoded.payload_hash,
                                tp.partition,
                                record.offset,
                            )
                        )
                async with connection.transaction():
                    await connection.copy_records_to_table(table, records=rows)
                copied += len(rows)
                del rows
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


async def measure_ingest_alone(kafka: str) -> list[float]:
    """Ingest's events/s over HTTP as bench.ingest measures it (its own process and load)."""
    topic = f"bench.ingest.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka, [TopicSpec(topic, PARTITIONS)])
    bodies = ingest_bench.request_bodies()
    with ingest_bench.ingest_process(kafka, topic) as url:
        return [(await ingest_bench.measure_ingest(url, bodies))[0] for _ in range(ROUNDS)]


async def measure_group(kafka: str, database: str, events: list[Event], instances: int) -> EngineRun:
    """`instances` engine processes on one tenant: ready and settled first, then the events published."""
    topic = f"bench.group.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka, [TopicSpec(topic, PARTITIONS)])
    with engine_group(kafka, database, topic, PARTITIONS, instances) as group:
        await wait_ready(group)
        started = time.perf_counter()
        publishing = asyncio.ensure_future(publish(kafka, topic, events))
        run = await until_recorded(database, group, len(events), started)
        await publishing
        return run


@dataclass(frozen=True)
class RebuildRun:
    seconds: float
    exit_code: int
    summary: str  # its "N events give M cells; D differ" line


async def measure_backfill(kafka: str, database: str) -> tuple[EngineRun, float, RebuildRun]:
    """A year for 10 facilities posted to ingest (its own process) while the engine group records:
    from the first 202 to the last event recorded. Also returns ingest's own events/s over the posting,
    and the rebuild's check of the result (every cell recomputed from the stored events)."""
    bodies, total = backfill_bodies()
    topic = f"bench.backfill.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka, [TopicSpec(topic, PARTITIONS)])
    token = identity_token(
        Identity(
            tenant=ORIGIN.tenant,
            role=Role.PIPELINE,
            key_id="bench",
            facilities=frozenset(BACKFILL_FACILITIES),
            timezone=ORIGIN.timezone,
        ),
        "ingest",
    )
    with (
        ingest_bench.ingest_process(kafka, topic) as ingest_url,
        engine_group(kafka, database, topic, PARTITIONS, BACKFILL_INSTANCES) as group,
    ):
        await wait_ready(group)
        started = time.perf_counter()
        posting = asyncio.ensure_future(post_all(ingest_url, token, bodies))
        run = await until_recorded(database, group, total, started)
        posted_in = await posting
        return run, total / posted_in, await rebuild_check(database, group.schema)


async def rebuild_check(database: str, schema: str) -> RebuildRun:
    """`python -m kpi_engine rebuild --dry-run` over what the engine recorded: the incremental cells
    against the from-scratch computation, at this scale."""
    environment = {**os.environ, "DATABASE_URL": database, "VR_DB_SCHEMA": schema}
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kpi_engine",
        "rebuild",
        "--tenant",
        ORIGIN.tenant,
        "--dry-run",
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    summary = next(
        (line for line in output.decode().splitlines() if " differ " in line), output.decode()[-300:]
    )
    return RebuildRun(time.perf_counter() - started, process.returncode or 0, summary.strip())


def _median_run(runs: list[EngineRun]) -> EngineRun:
    """The round with the median steady rate (its lock waits and CPU are reported with it)."""
    return sorted(runs, key=lambda run: run.steady_rate)[len(runs) // 2]


def backfill_bodies() -> tuple[list[bytes], int]:
    """Request bodies of 500 events each: chunks of the realistic stream, each its own patients."""
    bodies, total = [], 0
    # The year before today: ingest refuses events from the future.
    start = datetime.combine(date.today() - timedelta(days=380), clock(5), UTC)
    for chunk in range(BACKFILL_EVENTS // 100_000):
        events = event_stream(
            seed=1_000 + chunk,
            count=100_000,
            days=365,
            patients=2_000,
            facilities=BACKFILL_FACILITIES,
            patient_prefix=f"P{chunk}-",
            start=start,
        )
        documents = [event_document(e) for e in events]
        total += len(documents)
        bodies += [orjson.dumps(documents[i : i + 500]) for i in range(0, len(documents), 500)]
    return bodies, total


async def post_all(url: str, token: str, bodies: list[bytes]) -> float:
    """Post every body once (4 in flight); seconds from the first 202 to the last."""
    queue = list(reversed(bodies))
    first: list[float] = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:

        async def worker() -> None:
            while queue:
                body = queue.pop()
                while True:
                    response = await client.post(
                        "/v1/events",
                        content=body,
                        headers={"X-VR-Identity": token, "Content-Type": "application/json"},
                    )
                    if response.status_code == 202:
                        if rejected := response.json()["rejected"]:
                            raise RuntimeError(f"ingest rejected {rejected} events: {response.text[:300]}")
                        first.append(first[0] if first else time.perf_counter())
                        break
                    if response.status_code not in (429, 503):
                        raise RuntimeError(f"ingest answered {response.status_code}: {response.text[:300]}")
                    await asyncio.sleep(1.0)  # the broker is behind: back off as a pipeline would

        await asyncio.gather(*(worker() for _ in range(4)))
    return time.perf_counter() - first[0]


async def main() -> None:
    events = event_stream(seed=101, count=EVENTS, days=365, patients=5000)
    engine_rates, baseline_rates, floor_rates = [], [], []
    with broker_servers() as kafka, database_url() as database:
        topic = f"bench.events.{uuid.uuid4().hex[:8]}"
        await ensure_topics(kafka, [TopicSpec(topic, PARTITIONS)])
        await publish(kafka, topic, events)
        # The generator's objects would otherwise sit in every full collection of every path measured;
        # the service itself settles its heap the same way after start-up.
        settle_heap()
        for _ in range(ROUNDS):
            baseline_rates.append(await measure_baseline(kafka, database, topic))
            floor_rates.append(await measure_floor(kafka, database, topic))
            engine_rates.append(await measure_engine(kafka, database, topic))
        print(f"engine {engine_rates}, floor {floor_rates}, baseline {baseline_rates}", flush=True)
        ingest_rates = await measure_ingest_alone(kafka)
        print(f"ingest {ingest_rates}", flush=True)
        group_events = event_stream(seed=202, count=GROUP_EVENTS, days=365, patients=10_000)
        ones, twos = [], []
        for _ in range(GROUP_ROUNDS):  # interleaved: the machine's speed drifts between minutes
            ones.append(await measure_group(kafka, database, group_events, 1))
            twos.append(await measure_group(kafka, database, group_events, 2))
        del group_events
        print(f"one {ones}\ntwo {twos}", flush=True)
        backfill, backfill_ingest, rebuild = await measure_backfill(kafka, database)
    body = report(
        engine_rates,
        floor_rates,
        baseline_rates,
        ingest_rates,
        ones,
        twos,
        backfill,
        backfill_ingest,
        rebuild,
    )
    write_section("kpi-engine-throughput", body)
    print(body)


def report(
    engine_rates: list[float],
    floor_rates: list[float],
    baseline_rates: list[float],
    ingest_rates: list[float],
    ones: list[EngineRun],
    twos: list[EngineRun],
    backfill: EngineRun,
    backfill_ingest: float,
    rebuild: RebuildRun,
) -> str:
    engine, floor = statistics.median(engine_rates), statistics.median(floor_rates)
    ingest = statistics.median(ingest_rates)
    one, two = _median_run(ones), _median_run(twos)
    to_floor, to_ingest, scale = engine / floor, one.steady_rate / ingest, two.steady_rate / one.steady_rate

    def verdict(value: float, target: float) -> str:
        return "meets" if value >= target else "misses"

    def cpu(run: EngineRun) -> str:
        used = ", ".join(f"{owner} {seconds:.1f} s" for owner, seconds in run.cpu.items())
        return f"{used}; all cores {run.machine_busy:.0%} busy"

    rows = "\n".join(
        f"| {path} | {value} |"
        for path, value in (
            (
                "engine in this process: topic → a transaction per batch, all KPI effects",
                spread(engine_rates),
            ),
            (
                "floor: consume + the engine's decoder (validation, canonical hash) + keyed COPY",
                spread(floor_rates),
            ),
            ("baseline: consume + COPY, unvalidated", spread(baseline_rates)),
            ("ingest alone, its own process, HTTP batches of 500", spread(ingest_rates)),
            (
                f"one `python -m kpi_engine` process: {GROUP_EVENTS:,} events published as it runs, "
                "from 10 % to 90 % recorded",
                spread([run.steady_rate for run in ones]),
            ),
            ("two processes, one consumer group, the same tenant", spread([run.steady_rate for run in twos])),
        )
    )
    minutes = backfill.seconds / 60
    return f"""## KPI engine throughput

{today()} — {machine()}. Run: `make bench` (`python -m bench.kpi_engine`); local broker and PostgreSQL.
{EVENTS:,} realistic events (stays and readmissions, claims, payments, costs, medication, outages, A/R
snapshots, retractions) over a year for 5,000 patients of one tenant, {PARTITIONS} partitions (the
processes: {GROUP_EVENTS:,} such events for 10,000 patients). Medians
of {ROUNDS} interleaved rounds (range in brackets) where a range is shown.

| path | events/s |
|---|---:|
{rows}

* **engine / floor = {to_floor:.2f}** — target ≥ 0.5: {verdict(to_floor, 0.5)} the target.
* **engine / ingest = {to_ingest:.2f}** (one engine process against ingest alone) — target ≥ 0.5:
  {verdict(to_ingest, 0.5)} the target.
* **two instances / one = {scale:.2f}×** — target ≥ 1.3×: {verdict(scale, 1.3)} the target. Time their
  connections spent waiting on locks (sampled every {LOCK_SAMPLE_S * 1000:.0f} ms from pg_stat_activity,
  summed over connections): {two.lock_wait_s:.1f} s in a {two.seconds:.1f} s run (one instance:
  {one.lock_wait_s:.1f} s). CPU over the median run — one instance: {cpu(one)}; two: {cpu(two)}.
* **backfill: {backfill.events:,} events** of a year for {len(BACKFILL_FACILITIES)} facilities, posted to
  ingest in batches of 500 while {BACKFILL_INSTANCES} engine processes record them: **{minutes:.1f}
  minutes** from the first 202 to the last event recorded ({backfill.rate:,.0f} events/s; ingest
  accepted them at {backfill_ingest:,.0f} events/s). CPU: {cpu(backfill)}.
* The rebuild's check of that backfill (`python -m kpi_engine rebuild --dry-run`, every cell recomputed
  from the stored events while the engines run): {rebuild.seconds:.0f} s, exit {rebuild.exit_code} —
  "{rebuild.summary}".
"""


if __name__ == "__main__":
    asyncio.run(main())
