"""Kafka topic names, in one place. Versioned: a breaking change to a message is a new topic."""

EVENTS = "vr.events.v1"
"""Validated, pseudonymised events from ingest (CloudEvents structured JSON, see events.codec)."""
EVENTS_DLQ = "vr.events.dlq.v1"
"""Messages the KPI engine could not process, with the reason in headers."""
KPI_UPDATES = "vr.kpi-updates.v1"
"""Compact notices of changed KPI buckets, for settlement."""

ALL = (EVENTS, EVENTS_DLQ, KPI_UPDATES)
