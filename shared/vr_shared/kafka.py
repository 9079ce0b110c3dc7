"""Kafka plumbing: topic creation, producer and consumer construction, batch publishing.

Every client is created here with its settings explained, and opened/closed by the service's
lifespan (the one place that owns it).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.producer.message_accumulator import BatchBuilder

from vr_shared.partitioning import partition_for

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int = 1
    # Retention must never delete a back-dated event: messages carry the append time (ingest stamps
    # its own clock; LogAppendTime on brokers that honour it) and time-based retention is off.
    configs: dict[str, str] = field(
        default_factory=lambda: {"message.timestamp.type": "LogAppendTime", "retention.ms": "-1"}
    )


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)  # aiokafka's record builder wants a list


async def ensure_topics(
    bootstrap_servers: str, topics: Iterable[TopicSpec], *, timeout_s: float = 15
) -> None:
    """Create the topics that do not exist yet (existing ones are left as they are)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=int(timeout_s * 1000))
    await asyncio.wait_for(admin.start(), timeout_s)
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t.name not in existing]
        if not missing:
            return
        new = [NewTopic(t.name, t.partitions, t.replication_factor, topic_configs=t.configs) for t in missing]
        try:
            response = await admin.create_topics(new)
        except TopicAlreadyExistsError:  # created concurrently by another process
            return
        for name, code, message in _topic_errors(response):
            if code not in (0, TopicAlreadyExistsError.errno):
                raise KafkaError(f"creating topic {name} failed: error {code} {message}")
        log.info("created topics", extra={"topics": [t.name for t in missing]})
    finally:
        await admin.close()


def _topic_errors(response: object) -> list[tuple[str, int, str | None]]:
    errors = getattr(response, "topic_errors", [])
    return [(e[0], e[1], e[2] if len(e) > 2 else None) for e in errors]


def create_producer(
    bootstrap_servers: str,
    *,
    request_timeout_ms: int = 10_000,
    client_id: str = "vr",
    enable_idempotence: bool = False,
) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        acks="all",  # 202 means every in-sync replica has the event (docs/events.md)
        # On where the broker supports it (Apache Kafka); the local broker cannot (InitProducerId v3).
        # Either way duplicates from retries are harmless: consumers deduplicate on (tenant, source, id).
        enable_idempotence=enable_idempotence,
        linger_ms=2,  # requests already arrive as batches; a short linger merges concurrent ones
        max_batch_size=1_048_576,  # one HTTP batch of 1,000 events fits in one record batch per partition
        max_request_size=8_388_608,
        request_timeout_ms=request_timeout_ms,  # also how long an unsent batch may wait before expiring
        retry_backoff_ms=100,
        connections_max_idle_ms=540_000,
        metadata_max_age_ms=60_000,
    )


def create_consumer(
    bootstrap_servers: str,
    *topics: str,
    group_id: str | None,
    client_id: str = "vr",
    session_timeout_ms: int = 10_000,
    max_poll_records: int = 2_000,
    max_partition_fetch_bytes: int = 1024 * 1024,
) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap_servers,
        group_id=group_id,
        client_id=client_id,
        enable_auto_commit=False,  # offsets are committed only after the database transaction
        auto_offset_reset="earliest",  # a new group starts from the first event: nothing is skipped
        isolation_level="read_uncommitted",  # no transactional producers write these topics
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=max(session_timeout_ms // 3, 500),
        request_timeout_ms=max(40_000, session_timeout_ms * 4),  # well above the session timeout
        max_poll_records=max_poll_records,
        max_poll_interval_ms=300_000,
        max_partition_fetch_bytes=max_partition_fetch_bytes,
    )


class BatchPublisher:
    """Publishes many messages as one record batch per partition and waits for every ack.

    Per-message `send()` costs about four times more CPU than appending to a batch builder; a
    request's events go out as a handful of batches. Partitions are chosen as the default
    partitioner does (murmur2 of the key, as the Java client and aiokafka), so keys land where any
    other Kafka producer would put them.
    """

    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self._producer = producer
        self._topic = topic
        # Facility keys repeat constantly; remembering them skips even the fast hash.
        self._partition_of = functools.lru_cache(maxsize=100_000)(partition_for)

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        """Returns once the broker acknowledged every message; raises on any failure."""
        partitions = sorted(await self._producer.partitions_for(self._topic))
        by_partition: dict[int, list[OutgoingMessage]] = defaultdict(list)
        partition_ids = tuple(partitions)
        for message in messages:
            by_partition[self._partition_of(message.key, partition_ids)].append(message)
        deliveries: list[asyncio.Future[object]] = []
        for partition, group in by_partition.items():
            deliveries.extend(await self._send_partition(partition, group))
        for delivery in deliveries:
            # If the caller gives up waiting (timeout), a batch may still fail later inside the producer;
            # its outcome is already reported to the caller as a failure, so it is consumed here.
            delivery.add_done_callback(_retrieve_outcome)
        await asyncio.gather(*deliveries)

    async def _send_partition(
        self, partition: int, messages: list[OutgoingMessage]
    ) -> list[asyncio.Future[object]]:
        deliveries = []
        batch = self._producer.create_batch()
        for message in messages:
            if not _append(batch, message):  # full: send it and start the next one
                deliveries.append(await self._producer.send_batch(batch, self._topic, partition=partition))
                batch = self._producer.create_batch()
                if not _append(batch, message):
                    raise KafkaError("a single message exceeds the maximum batch size")
        if batch.record_count():
            deliveries.append(await self._producer.send_batch(batch, self._topic, partition=partition))
        return deliveries


def _append(batch: BatchBuilder, message: OutgoingMessage) -> bool:
    return (
        batch.append(key=message.key, value=message.value, timestamp=None, headers=message.headers)
        is not None
    )


def _retrieve_outcome(delivery: asyncio.Future[object]) -> None:
    if not delivery.cancelled():
        delivery.exception()


async def broker_reachable(producer: AIOKafkaProducer, *, timeout_s: float = 2.0) -> bool:
    """True when the cluster answered a metadata request just now."""
    try:
        return bool(await asyncio.wait_for(producer.client.fetch_all_metadata(), timeout_s))
    except (TimeoutError, KafkaError, OSError):
        return False
