from __future__ import annotations

from pydantic import Field

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
