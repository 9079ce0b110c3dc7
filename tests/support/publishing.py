"""Putting events on a topic exactly as ingest would (same value, key and headers)."""

from __future__ import annotations

from collections.abc import Sequence

from vr_shared.events import Event, Origin, encode_event, event_document, message_headers, message_key
from vr_shared.kafka import BatchPublisher, OutgoingMessage, create_producer

ORIGIN = Origin("mission-health", "America/New_York")


def as_messages(events: Sequence[Event], origin: Origin = ORIGIN) -> list[OutgoingMessage]:
    documents = [event_document(e) for e in events]
    return [
        OutgoingMessage(
            message_key(origin.tenant, d), encode_event(origin, d), message_headers(origin.tenant, d)
        )
        for d in documents
    ]


async def publish(
    bootstrap_servers: str, topic: str, events: Sequence[Event], origin: Origin = ORIGIN
) -> None:
    producer = create_producer(bootstrap_servers, client_id="test-publisher")
    await producer.start()
    try:
        messages = as_messages(events, origin)
        publisher = BatchPublisher(producer, topic)
        for start in range(0, len(messages), 1000):
            await publisher.publish(messages[start : start + 1000])
    finally:
        await producer.stop()
