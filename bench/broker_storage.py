"""What durable broker storage costs on `make up`: the local broker (Tansu) with memory storage and with
`s3://` storage on the file-backed local S3 server, side by side in one run.

For each: raw produce (the same serialised events ingest writes, record batches per partition,
acks=all), consume (a new group reading them all from the start) and ingest's own throughput over HTTP
(`python -m ingest`, one worker). Rounds alternate between the two brokers; medians are reported.
Target: durable storage costs ingest at most 30 %.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from bench.ingest import (
    BATCH,
    PARTITIONS,
    UNAVAILABLE_ANSWERS,
    ingest_process,
    measure_ingest,
    measure_raw_batches,
    request_bodies,
    serialised_messages,
)
from bench.report import machine, today, write_section
from bench.support import spread
from devstack.broker import running_broker
from devstack.s3 import running_s3
from vr_shared.kafka import OutgoingMessage, TopicSpec, create_consumer, ensure_topics

ROUNDS = 3
STORAGES = ("memory", "s3")
MAKE_UP_PARTITIONS = 1  # what `make up` creates (one engine runs there)


@contextlib.contextmanager
def broker(storage: str) -> Iterator[str]:
    if storage == "memory":
        with running_broker() as local:
            yield local.bootstrap_servers
        return
    with (
        tempfile.TemporaryDirectory(prefix="vr-bench-s3-") as data,
        running_s3(Path(data)) as s3,
        running_broker(storage=s3) as local,
    ):
        yield local.bootstrap_servers


async def measure_consume(bootstrap: str, topic: str, expected: int) -> float:
    consumer = create_consumer(
        bootstrap, topic, group_id=f"bench-{uuid.uuid4().hex[:8]}", max_poll_records=5_000
    )
    await consumer.start()
    try:
        seen, started = 0, time.perf_counter()
        while seen < expected:
            batch = await consumer.getmany(timeout_ms=1_000, max_records=5_000)
            seen += sum(len(records) for records in batch.values())
        return seen / (time.perf_counter() - started)
    finally:
        await consumer.stop()


async def measure(
    storage: str, partitions: int, bodies: list[bytes], messages: list[OutgoingMessage]
) -> dict[str, float]:
    with broker(storage) as bootstrap:
        raw_topic, ingest_topic = f"bench.raw.{uuid.uuid4().hex[:8]}", f"bench.ingest.{uuid.uuid4().hex[:8]}"
        await ensure_topics(
            bootstrap, [TopicSpec(raw_topic, partitions), TopicSpec(ingest_topic, partitions)]
        )
        await measure_raw_batches(bootstrap, raw_topic, messages[: BATCH * 10])  # warm-up, not counted
        produce = await measure_raw_batches(bootstrap, raw_topic, messages)
        consume = await measure_consume(bootstrap, raw_topic, expected=len(messages) + BATCH * 10)
        with ingest_process(bootstrap, ingest_topic) as url:
            refused_before = UNAVAILABLE_ANSWERS[0]
            ingest, _ = await measure_ingest(url, bodies)
    return {
        "produce": produce,
        "consume": consume,
        "ingest": ingest,
        "503": UNAVAILABLE_ANSWERS[0] - refused_before,
    }


async def main() -> None:
    bodies, messages = request_bodies(), serialised_messages()
    results: dict[tuple[str, int], dict[str, list[float]]] = {
        (s, p): {"produce": [], "consume": [], "ingest": [], "503": []}
        for s in STORAGES
        for p in (MAKE_UP_PARTITIONS, PARTITIONS)
    }
    for round_ in range(ROUNDS):
        for storage in STORAGES if round_ % 2 == 0 else reversed(STORAGES):
            for partitions in (MAKE_UP_PARTITIONS, PARTITIONS):
                for name, value in (await measure(storage, partitions, bodies, messages)).items():
                    results[(storage, partitions)][name].append(value)
    write_section("broker-storage", report(results, len(messages)))


def report(results: dict[tuple[str, int], dict[str, list[float]]], count: int) -> str:
    def median(storage: str, partitions: int, key: str) -> float:
        return statistics.median(results[(storage, partitions)][key])

    cost = 1 - median("s3", MAKE_UP_PARTITIONS, "ingest") / median("memory", MAKE_UP_PARTITIONS, "ingest")
    verdict = "meets" if cost <= 0.30 else "misses"
    refusals = ", ".join(
        f"{storage} with {partitions}: {sum(results[(storage, partitions)]['503']):.0f}"
        for storage in STORAGES
        for partitions in (MAKE_UP_PARTITIONS, PARTITIONS)
    )
    paths = (
        ("produce", f"raw produce, record batches per partition, acks=all ({count:,} events)"),
        ("consume", "consume from the start, a new group"),
        ("ingest", "ingest over HTTP (one worker, batches of 500, 4 in flight)"),
    )
    rows = "\n".join(
        f"| {partitions} | {label} | {spread(results[('memory', partitions)][key])} | "
        f"{spread(results[('s3', partitions)][key])} | "
        f"{median('s3', partitions, key) / median('memory', partitions, key):.2f} |"
        for partitions in (MAKE_UP_PARTITIONS, PARTITIONS)
        for key, label in paths
    )
    return f"""## Broker storage: memory vs durable (make up)

{today()} — {machine()}.
The local broker (Tansu 0.6) with `memory://` storage and with `s3://` storage on the file-backed local
S3 server (MiniStack, objects as files), in one run; {ROUNDS} rounds alternating which goes first, median
(range), events/s. `make up` creates its topics with {MAKE_UP_PARTITIONS} partition (one engine runs
there); {PARTITIONS} partitions, the production default, for comparison. Run: `make bench`
(`python -m bench.broker_storage`).

| partitions | path | memory | durable (s3) | durable / memory |
|---:|---|---:|---:|---:|
{rows}

Ingest's 503 answers while measuring (the broker did not acknowledge in time; not counted above), all
rounds: {refusals}.

With `make up`'s topics, durable storage costs ingest {cost:.0%} of its throughput on this machine: it
**{verdict}** the target (at most 30 %). The cost grows with the partitions a request touches: the broker
writes each partition's batch as objects in the S3 server, a few milliseconds each, one request at a
time per connection.
"""


if __name__ == "__main__":
    asyncio.run(main())
