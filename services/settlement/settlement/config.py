from __future__ import annotations

from pydantic import Field, field_validator

from settlement.domain.webhooks import DEFAULT_RETRY_SCHEDULE, Network, parse_networks
from vr_shared.secrets import PrivateKeyPem
from vr_shared.settings import InternalServiceSettings
from vr_shared.topics import KPI_UPDATES


class Settings(InternalServiceSettings):
    service_name: str = "settlement"
    http_port: int = 8003
    database_url: str = Field(  # required here: settlement owns tables
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        validation_alias="DATABASE_URL",
    )
    db_schema: str = Field(default="settlement", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    kpi_engine_url: str = "http://127.0.0.1:8002"
    # Settlement's own Ed25519 key (PEM): it reads KPIs as itself, scoped to one contract's KPIs and
    # facilities; the KPI engine holds the public half (docs/security.md).
    service_private_key: PrivateKeyPem = Field(description="settlement's Ed25519 private key (PEM)")
    kpi_timeout_seconds: float = Field(default=10.0, gt=0)
    updates_topic: str = KPI_UPDATES
    consumer_group: str = "vr-settlement"
    session_timeout_ms: int = Field(default=10_000, ge=1_000)
    retry_after_seconds: int = Field(default=5, ge=1)
    # How often periods past their run-out are recomputed, so a blocked one is seen (metric and alert)
    # even when nobody reads it.
    blocked_check_interval_seconds: float = Field(default=300.0, gt=0)
    # Webhooks (docs/webhooks.md). Endpoints that resolve to these networks are allowed although
    # they are not public; none by default (`make up` allows loopback for local development).
    webhook_allowed_networks: str = ""
    # Seconds between attempts after the immediate first one (Standard Webhooks' schedule, ≥ 24 h).
    webhook_retry_schedule: str = ",".join(f"{s:g}" for s in DEFAULT_RETRY_SCHEDULE)
    # One attempt's whole deadline — resolving, connecting, sending and the answer's status line and
    # headers — however slowly the receiver answers; also each read's timeout.
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    # An endpoint failing without a success for this long is disabled (and says so).
    webhook_disable_after_seconds: float = Field(default=5 * 86400, gt=0)
    # After a secret rotation the old secret signs beside the new one this long.
    webhook_secret_overlap_seconds: float = Field(default=86400, ge=0)
    webhook_poll_interval_seconds: float = Field(default=1.0, gt=0)
    webhook_concurrency: int = Field(default=8, ge=1, le=64)

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        parse_networks(value)  # a bad block refuses to start, naming the variable
        return value

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        if not retry_schedule(value):
            raise ValueError("comma-separated positive seconds, e.g. 5,300,1800")
        return value

    def allowed_networks(self) -> tuple[Network, ...]:
        return parse_networks(self.webhook_allowed_networks)

    def retry_schedule(self) -> tuple[float, ...]:
        return retry_schedule(self.webhook_retry_schedule)


def retry_schedule(text: str) -> tuple[float, ...]:
    try:
        delays = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        return ()
    return delays if all(d > 0 for d in delays) else ()
