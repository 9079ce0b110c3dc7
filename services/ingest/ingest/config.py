from __future__ import annotations

from pydantic import Field

from vr_shared import topics
from vr_shared.secrets import StrongSecret
from vr_shared.settings import InternalServiceSettings


class Settings(InternalServiceSettings):
    service_name: str = "ingest"
    http_port: int = 8001

    pseudonym_key: StrongSecret = Field(
        description="master secret from which each tenant's HMAC pseudonymisation key is derived",
    )
    events_topic: str = topics.EVENTS

    max_events_per_request: int = Field(default=1_000, ge=1)
    max_body_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    max_future_skew_seconds: int = Field(default=300, ge=0)

    # A client must get 503 within 5 s: publishing gets a little less, the rest is HTTP and parsing.
    publish_timeout_seconds: float = Field(default=4.0, gt=0, le=30)
    retry_after_seconds: int = Field(default=5, ge=1)
    # How long a record batch may wait in the producer for the broker before it expires.
    kafka_request_timeout_ms: int = Field(default=10_000, ge=1_000)
