from __future__ import annotations

from pydantic import Field

from vr_shared.secrets import PublicKeyPem
from vr_shared.settings import InternalServiceSettings
from vr_shared.topics import EVENTS, EVENTS_DLQ, KPI_UPDATES

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SCHEMA_PATTERN = r"^[a-z_][a-z0-9_]{0,62}$"


class Settings(InternalServiceSettings):
    service_name: str = "kpi-engine"
    http_port: int = 8002
    database_url: str = Field(  # required here: the engine owns tables
        default=DEFAULT_DATABASE_URL,
        validation_alias="DATABASE_URL",
    )
    db_schema: str = Field(default="kpi", pattern=SCHEMA_PATTERN)
    # Settlement reads KPIs as itself (role `service`), signing with its own key (docs/security.md).
    settlement_public_key: PublicKeyPem = Field(description="settlement's Ed25519 public key (PEM)")

    events_topic: str = EVENTS
    dead_letter_topic: str = EVENTS_DLQ
    updates_topic: str = KPI_UPDATES
    consumer_group: str = "vr-kpi-engine"
    # A backlog is recorded in batches this large: a batch writes each cell it touches once, so larger
    # batches write fewer cells per event. Measured on a year of events (docs/benchmarks.md): 100,000
    # events from a filled topic in 9.7 s with 5,000 (the fetch gave ≈ 3,850 per batch), 7.8 s with
    # 10,000 and 6.7 s with 20,000 — with partition fetches large enough to fill them. Live traffic
    # comes in batches of what has arrived, whatever this is.
    batch_max_records: int = Field(default=20_000, ge=1)
    fetch_max_partition_bytes: int = Field(default=8 * 1024 * 1024, ge=64 * 1024)
    session_timeout_ms: int = Field(default=10_000, ge=1_000)
    # An event whose time is this far behind the moment it is processed counts as late (still counted).
    late_after_hours: int = Field(default=48, ge=1)
    # While the database is away the batch is retried, never skipped; this spaces the attempts.
    retry_backoff_seconds: float = Field(default=1.0, gt=0)
    # How often the rolling 30-day KPI gauges (`vr_kpi_value`) are recomputed from the cells.
    kpi_gauge_interval_seconds: float = Field(default=30.0, gt=0)
