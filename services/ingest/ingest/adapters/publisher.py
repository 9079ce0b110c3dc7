"""Publishes accepted events to the events topic and waits for the broker's acknowledgement."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from aiokafka.errors import KafkaError

from ingest import metrics
from vr_shared.events import EventDocument, Origin, encode_event, message_headers, message_key
from vr_shared.kafka import BatchPublisher, OutgoingMessage


class BrokerUnavailable(Exception):
    """The broker did not acknowledge every event in time. Nothing of the request counts as accepted."""


class KafkaEventPublisher:
    def __init__(self, publisher: BatchPublisher, connected: asyncio.Event, *, timeout_s: float) -> None:
        self._publisher = publisher
        self._connected = connected  # set once the producer has started (the broker was reached)
        self._timeout_s = timeout_s

    async def publish(self, origin: Origin, documents: Sequence[EventDocument]) -> None:
        if not self._connected.is_set():
            metrics.PUBLISH_ERRORS.labels("not_connected").inc()
            raise BrokerUnavailable("the broker has not been reached since ingest started")
        tenant = origin.tenant
        messages = [
            OutgoingMessage(message_key(tenant, d), encode_event(origin, d), message_headers(tenant, d))
            for d in documents
        ]
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._publisher.publish(messages)
        except TimeoutError as exc:
            metrics.PUBLISH_ERRORS.labels("timeout").inc()
            raise BrokerUnavailable(f"the broker did not acknowledge within {self._timeout_s:g} s") from exc
        except (KafkaError, OSError) as exc:
            metrics.PUBLISH_ERRORS.labels(type(exc).__name__).inc()
            raise BrokerUnavailable(f"the broker refused or failed the write ({type(exc).__name__})") from exc
        finally:
            metrics.PUBLISH_LATENCY.observe(time.perf_counter() - started)
