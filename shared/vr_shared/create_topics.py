"""`python -m vr_shared.create_topics`: create the platform's topics where they are missing.

Run once before the services where topics are not created on the fly (Kubernetes: the
`vr-create-topics` Job; compose creates them with Kafka's own tool). Partitions and replicas come from
the settings (`VR_EVENTS_TOPIC_PARTITIONS`, `VR_TOPIC_REPLICATION_FACTOR`).
"""

from __future__ import annotations

import asyncio
import sys

from vr_shared import topics
from vr_shared.kafka import TopicSpec, ensure_topics
from vr_shared.settings import KafkaSettings


def platform_topics(settings: KafkaSettings) -> list[TopicSpec]:
    """Events and change notices with the same partitions (both keyed to spread work), dead letters in one."""
    replicas = settings.topic_replication_factor
    return [
        TopicSpec(topics.EVENTS, settings.events_topic_partitions, replicas),
        TopicSpec(topics.EVENTS_DLQ, 1, replicas),
        TopicSpec(topics.KPI_UPDATES, settings.events_topic_partitions, replicas),
    ]


def main() -> int:
    settings = KafkaSettings()
    specs = platform_topics(settings)
    asyncio.run(ensure_topics(settings.kafka_bootstrap_servers, specs))
    for spec in specs:
        print(f"{spec.name}: {spec.partitions} partitions, {spec.replication_factor} replicas")
    return 0


if __name__ == "__main__":
    sys.exit(main())
