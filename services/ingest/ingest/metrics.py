"""Ingest metrics (docs/operations.md). Labels are bounded sets: event types, outcomes, error codes."""

from prometheus_client import Counter, Gauge, Histogram

from vr_shared.events.catalogue import EVENT_TYPES
from vr_shared.metrics import HTTP_REQUESTS, LATENCY_BUCKETS

EVENTS = Counter(
    "vr_ingest_events_total",
    "Events received, by type and outcome (accepted, rejected, unavailable)",
    ["type", "outcome"],
)
EVENT_REJECTIONS = Counter(
    "vr_ingest_event_rejections_total", "Rejected events by reason (the first error's code)", ["reason"]
)
REQUEST_REJECTIONS = Counter(
    "vr_ingest_request_rejections_total", "Requests refused as a whole, by reason", ["reason"]
)
BATCH_SIZE = Histogram(
    "vr_ingest_request_events", "Events per request", buckets=(1, 10, 50, 100, 250, 500, 750, 1000)
)
PUBLISH_LATENCY = Histogram(
    "vr_ingest_publish_duration_seconds",
    "Time from publish start to the broker's acks=all acknowledgement",
    buckets=LATENCY_BUCKETS,
)
PUBLISH_ERRORS = Counter("vr_ingest_publish_errors_total", "Failed publishes by reason", ["reason"])
BROKER_REACHABLE = Gauge(
    "vr_ingest_broker_reachable",
    "1 when the broker answered ingest's last readiness check (ingest stays ready: it answers 503)",
)

# Known label values start at 0, so dashboards and alerts see a series before the first occurrence.
for _type in EVENT_TYPES:
    for _outcome in ("accepted", "rejected", "unavailable"):
        EVENTS.labels(_type, _outcome)
PUBLISH_ERRORS.labels("timeout")
# The event route's answers the 5xx/503 alerts watch: a counter that first appears at 1 has no rate yet.
for _status in ("202", "500", "503"):
    HTTP_REQUESTS.labels("ingest", "POST", "/v1/events", _status)
