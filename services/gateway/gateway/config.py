from __future__ import annotations

from pydantic import Field

from vr_shared.secrets import PrivateKeyPem, StrongSecret
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
    # The Ed25519 key (PEM) the gateway signs identity tokens with; services hold its public half.
    identity_private_key: PrivateKeyPem = Field(description="the gateway's Ed25519 private key (PEM)")
    # A valid platform_admin key from start-up on, stored hashed like any other key. Unset, the key it
    # made is retired (revoked) at start-up; revoked through the API, it stays revoked (docs/security.md).
    bootstrap_admin_key: StrongSecret | None = None
    # Failed authentication per client address: this many per minute, then 429 (a guessing client
    # is slowed; a negative cache keeps unknown keys from costing a database lookup each).
    auth_failures_per_minute: int = Field(default=30, ge=1)
    unknown_key_cache_seconds: float = Field(default=30.0, ge=0)
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
