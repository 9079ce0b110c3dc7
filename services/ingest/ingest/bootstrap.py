"""The composition root: the one place that names the concrete adapters ingest runs with."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from aiokafka import AIOKafkaProducer

from ingest.adapters.publisher import KafkaEventPublisher
from ingest.config import Settings
from ingest.domain.intake import BodyLimits, IntakePolicy
from ingest.domain.pseudonyms import Pseudonymiser
from ingest.handlers import Intake
from vr_shared.kafka import BatchPublisher, TopicSpec, create_producer


@dataclass(frozen=True, slots=True)
class Components:
    producer: AIOKafkaProducer
    connected: asyncio.Event  # the producer has started: until then events are answered 503
    intake: Intake
    body_limits: BodyLimits
    events_topic: TopicSpec
    retry_after_seconds: int  # told to a sender whose events the broker did not take


def build(settings: Settings) -> Components:
    producer = create_producer(
        settings.kafka_bootstrap_servers,
        request_timeout_ms=settings.kafka_request_timeout_ms,
        client_id="ingest",
        enable_idempotence=settings.kafka_enable_idempotence,
    )
    connected = asyncio.Event()
    publisher = KafkaEventPublisher(
        BatchPublisher(producer, settings.events_topic), connected, timeout_s=settings.publish_timeout_seconds
    )
    intake = Intake(
        policy=IntakePolicy(max_future_skew=timedelta(seconds=settings.max_future_skew_seconds)),
        pseudonymiser=Pseudonymiser(settings.pseudonym_key.get_secret_value().encode()),
        publisher=publisher,
    )
    return Components(
        producer=producer,
        connected=connected,
        intake=intake,
        body_limits=BodyLimits(max_bytes=settings.max_body_bytes, max_events=settings.max_events_per_request),
        events_topic=TopicSpec(
            settings.events_topic, settings.events_topic_partitions, settings.topic_replication_factor
        ),
        retry_after_seconds=settings.retry_after_seconds,
    )
