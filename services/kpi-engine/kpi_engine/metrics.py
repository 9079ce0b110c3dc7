"""KPI engine metrics (docs/operations.md)."""

from prometheus_client import Counter, Gauge, Histogram

from vr_shared.feeds import FEEDS
from vr_shared.metrics import LATENCY_BUCKETS

CONSUMER_LAG = Gauge(
    "vr_kpi_consumer_lag_messages",
    "Messages behind the partition's high watermark (from fetch responses)",
    ["topic", "partition"],
)
EVENTS_PROCESSED = Counter("vr_kpi_events_processed_total", "Events recorded for the first time")
DUPLICATES = Counter("vr_kpi_duplicates_total", "Redelivered events with the same payload (counted once)")
CONFLICTS = Counter(
    "vr_kpi_conflicts_total", "Events whose id was seen before with another payload (first kept)"
)
RETRACTIONS = Counter("vr_kpi_retracted_events_total", "Events that stopped counting because of a retraction")
LATE_EVENTS = Counter(
    "vr_kpi_late_events_total", "Events processed long after their event time (still counted)"
)
DEAD_LETTERS = Counter("vr_kpi_dead_letters_total", "Messages sent to the dead-letter topic")
REPLAYS = Counter("vr_kpi_replayed_messages_total", "Messages seen again after a restart or rebalance")
LATEST_EVENT_TIME = Gauge(
    "vr_kpi_latest_event_time_seconds",
    "Event time of the newest event per facility (freshness = now − this)",
    ["tenant", "facility"],
)
BATCH_DURATION = Histogram(
    "vr_kpi_batch_duration_seconds", "Time to record one consumed batch", buckets=LATENCY_BUCKETS
)
BATCH_RETRIES = Counter("vr_kpi_batch_retries_total", "Batch attempts repeated because the database failed")
CELL_UPDATES = Counter("vr_kpi_cell_updates_total", "KPI cells changed (one change notice each)")
NOTICE_PUBLISH_FAILURES = Counter(
    "vr_kpi_notice_publish_failures_total",
    "Drains of the change-notice outbox the broker failed (the notices stay queued; retried after a pause)",
)
OLDEST_NOTICE_AGE = Gauge(
    "vr_kpi_oldest_queued_notice_seconds",
    "Age of the first change notice still queued after a drain (0: none); grows while a transaction "
    "stays open (docs/decisions/0007-commit-order.md)",
)
KPI_VALUE = Gauge(
    "vr_kpi_value",
    "Rolling 30-day value of each KPI per facility (dimension empty when the KPI has none)",
    ["tenant", "kpi", "facility", "dimension"],
)
EVENTS_BEFORE_WATERMARK = Counter(
    "vr_kpi_events_before_watermark_total",
    "Events whose time is before their feed's completeness watermark (counted; the declaration was wrong)",
    ["feed"],
)
for _feed in FEEDS:
    EVENTS_BEFORE_WATERMARK.labels(_feed)
FEED_COMPLETE_THROUGH = Gauge(
    "vr_kpi_feed_complete_through_timestamp_seconds",
    "Completeness watermark of each facility's feed: every event before this time has been sent",
    ["tenant", "facility", "feed"],
)
CAUGHT_UP = Gauge(
    "vr_kpi_consumer_caught_up",
    "1 when the last fetch found nothing and nothing is left to fetch: every event fetched is recorded",
)
LAST_FETCH = Gauge(
    "vr_kpi_consumer_last_fetch_timestamp_seconds",
    "When the oldest of the engine's partitions last had a fetch answered (its lag is as of then)",
)
