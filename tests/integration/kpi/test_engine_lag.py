"""Consumer lag per partition, checked against a count we know (the local broker's ListOffsets is short:
deploy/devstack/README.md, known quirks)."""

from __future__ import annotations

import uuid

from prometheus_client import REGISTRY

from kpi_engine import bootstrap
from kpi_engine.entrypoints.app import event_consumer
from tests.integration.kpi.test_engine_service import engine_settings
from tests.support.infrastructure import Infrastructure
from tests.support.publishing import publish
from tests.support.streams import event_stream
from vr_shared.kafka import TopicSpec, ensure_topics


async def test_lag_is_the_high_watermark_minus_our_position(infrastructure: Infrastructure) -> None:
    topic = f"test.events.{uuid.uuid4().hex[:10]}"
    await ensure_topics(infrastructure.kafka_bootstrap_servers, [TopicSpec(topic, 1)])
    await publish(infrastructure.kafka_bootstrap_servers, topic, event_stream(seed=41, count=300))
    settings = engine_settings(infrastructure, topic)
    components = bootstrap.build(settings)
    consumer = event_consumer(components, settings)
    await components.consumer.start()
    try:
        fetched = 0
        while fetched == 0:  # the first fetch after joining the group
            batch = await components.consumer.getmany(timeout_ms=2000, max_records=100)
            fetched = sum(len(records) for records in batch.values())
        await consumer.report_lag()
        lag = REGISTRY.get_sample_value("vr_kpi_consumer_lag_messages", {"topic": topic, "partition": "0"})
        assert (fetched, lag) == (100, 200.0)
    finally:
        await components.consumer.stop()
        await components.engine.dispose()
