"""Reading back what landed on a topic, from the real broker."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition


@dataclass(frozen=True)
class Landed:
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    partition: int


async def read_topic(
    bootstrap_servers: str, topic: str, *, expect: int, timeout_s: float = 15
) -> list[Landed]:
    """Every message of `topic` from the beginning; waits until at least `expect` arrived.

    Reads by fetching (not by end offsets, which the local broker reports short).
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        client_id=f"test-reader-{uuid.uuid4().hex[:6]}",
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        assignment = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assignment)
        await consumer.seek_to_beginning(*assignment)
        landed: list[Landed] = []
        deadline = asyncio.get_running_loop().time() + timeout_s
        idle_rounds = 0
        while asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for tp, records in batch.items():
                landed.extend(Landed(r.key, r.value, tuple(r.headers), tp.partition) for r in records)
            idle_rounds = 0 if batch else idle_rounds + 1
            if len(landed) >= expect and idle_rounds >= 2:  # nothing more arriving
                break
        return landed
    finally:
        await consumer.stop()
