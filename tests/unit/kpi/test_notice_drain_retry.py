"""A broker error while the engine publishes its change notices ends that drain, not the consumer loop:
the notices stay in the outbox and are published on a later drain, after a pause that doubles
(docs/operations.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError

from kpi_engine import metrics
from kpi_engine.adapters.notices import Publish
from kpi_engine.entrypoints.consumer import EventConsumer
from vr_shared.kafka import OutgoingMessage


@dataclass
class FakeOutbox:
    """Queued notices; a drain's publish failing leaves them queued (its transaction rolls back)."""

    queued: list[bytes] = field(default_factory=lambda: [b"n1", b"n2"])
    drains: int = 0

    async def publish_ready(self, publish: Publish, limit: int) -> int:
        self.drains += 1
        ready = self.queued[:limit]
        if ready:
            await publish([OutgoingMessage(b"key", value, []) for value in ready])
            del self.queued[: len(ready)]
        return len(ready)

    async def first_waiting_age(self) -> float:
        return 0.0


@dataclass
class FlakyBroker:
    failures: list[Exception]
    published: list[bytes] = field(default_factory=list)

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.published += [m.value for m in messages]


def _consumer(broker: FlakyBroker, outbox: FakeOutbox, backoff_s: float) -> EventConsumer:
    consumer = EventConsumer(
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        dead_letter_topic="dlq",
        updates_topic="updates",
        batch_max_records=10,
        retry_backoff_s=backoff_s,
    )
    consumer._outbox, consumer._notices = outbox, broker  # type: ignore[assignment]
    return consumer


async def test_a_broker_error_leaves_the_notices_queued_and_a_later_drain_publishes_them() -> None:
    outbox = FakeOutbox()
    broker = FlakyBroker([KafkaConnectionError("broker away"), KafkaTimeoutError()])
    consumer = _consumer(broker, outbox, backoff_s=0)
    failed_before = metrics.NOTICE_PUBLISH_FAILURES._value.get()

    await consumer.drain_outbox()  # no error raised: the consumer loop goes on
    await consumer.drain_outbox()
    assert outbox.queued == [b"n1", b"n2"] and broker.published == []
    assert metrics.NOTICE_PUBLISH_FAILURES._value.get() == failed_before + 2

    await consumer.drain_outbox()
    assert outbox.queued == [] and broker.published == [b"n1", b"n2"]


async def test_after_a_broker_error_the_next_drains_wait_their_pause() -> None:
    outbox = FakeOutbox()
    consumer = _consumer(FlakyBroker([KafkaConnectionError("broker away")]), outbox, backoff_s=60)
    await consumer.drain_outbox()
    await consumer.drain_outbox()  # within the pause: the broker is not asked again
    await consumer.drain_outbox()
    assert outbox.drains == 1 and outbox.queued == [b"n1", b"n2"]
