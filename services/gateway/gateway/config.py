from __future__ import annotations

from pydantic import Field, SecretStr

from vr_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "gateway"
    http_port: int = 8000
    database_url: str = Field(  # required here: the gateway owns tenants and keys
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        validation_alias="DATABASE_URL",
    )
    db_schema: str = Field(default="gateway", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    ingest_url: str = "http://127.0.0.1:8001"
    kpi_engine_url: str = "http://127.0.0.1:8002"
    settlement_url: str = "http://127.0.0.1:8003"
    # A valid platform_admin key from start-up on (SPEC §7); stored hashed like any other key.
    bootstrap_admin_key: SecretStr | None = Field(default=None, min_length=32)
    # Identity tokens the gateway signs for the services: short-lived (services accept at most 300 s).
    identity_ttl_seconds: int = Field(default=60, ge=5, le=300)
    # Per key: sustained requests per second and the burst above it.
    rate_limit_per_second: float = Field(default=50.0, gt=0)
    rate_limit_burst: int = Field(default=100, ge=1)
    max_body_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    upstream_connect_timeout_seconds: float = Field(default=2.0, gt=0)
    upstream_timeout_seconds: float = Field(default=30.0, gt=0)
    # How long a resolved key (tenant, role, facilities) is trusted before it is looked up again: a
    # revoked key stops working within this time on every gateway instance. A vendor's contracts (its
    # KPI view) are kept as long.
    key_cache_seconds: float = Field(default=5.0, ge=0)
