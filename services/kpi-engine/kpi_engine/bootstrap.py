"""The composition root: the one place that names the concrete adapters the engine runs with (the
entrypoints build their loops on them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from kpi_engine.adapters.queries import PostgresKpiReader
from kpi_engine.adapters.recorder import PostgresRecorder
from kpi_engine.config import Settings
from vr_shared.db import create_engine
from vr_shared.kafka import TopicSpec, create_consumer, create_producer


@dataclass(frozen=True, slots=True)
class Components:
    engine: AsyncEngine
    consumer: AIOKafkaConsumer
    producer: AIOKafkaProducer
    recorder: PostgresRecorder
    reader: PostgresKpiReader
    topics: list[TopicSpec]


def build(settings: Settings) -> Components:
    """Must run inside the event loop (aiokafka clients bind to it)."""
    engine = create_engine(settings.database_url, schema=settings.db_schema, pool_size=5)
    consumer = create_consumer(
        settings.kafka_bootstrap_servers,
        group_id=settings.consumer_group,
        client_id="kpi-engine",
        session_timeout_ms=settings.session_timeout_ms,
        max_poll_records=settings.batch_max_records,
        max_partition_fetch_bytes=settings.fetch_max_partition_bytes,
    )
    producer = create_producer(
        settings.kafka_bootstrap_servers,
        client_id="kpi-engine",
        enable_idempotence=settings.kafka_enable_idempotence,
    )
    recorder = PostgresRecorder(
        engine, settings.db_schema, late_after=timedelta(hours=settings.late_after_hours)
    )
    topics = [
        TopicSpec(settings.events_topic, settings.events_topic_partitions, settings.topic_replication_factor),
        TopicSpec(settings.dead_letter_topic, 1, settings.topic_replication_factor),
        # Change notices are keyed by tenant, KPI and facility: as many partitions as the events.
        TopicSpec(
            settings.updates_topic, settings.events_topic_partitions, settings.topic_replication_factor
        ),
    ]
    return Components(engine, consumer, producer, recorder, PostgresKpiReader(engine), topics)
