"""The composition root: the one place that names the concrete adapters the gateway runs with."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.adapters.contracts import SettlementContracts
from gateway.adapters.directory import PostgresDirectory
from gateway.adapters.idempotency import PostgresIdempotencyStore
from gateway.adapters.rate_limits import SharedRateLimits
from gateway.config import Settings
from gateway.domain.limits import TokenBuckets
from gateway.handlers import KeyResolver
from vr_shared.db import create_engine
from vr_shared.identity import IdentitySigner

MAX_FAILING_ADDRESSES = 100_000


@dataclass(frozen=True, slots=True)
class Components:
    engine: AsyncEngine
    directory: PostgresDirectory
    resolver: KeyResolver
    limits: SharedRateLimits
    upstreams: dict[str, httpx.AsyncClient]
    contracts: SettlementContracts  # a vendor's contracts, for its KPI view
    idempotency: PostgresIdempotencyStore


def build(settings: Settings) -> Components:
    engine = create_engine(settings.database_url, schema=settings.db_schema, pool_size=5)
    directory = PostgresDirectory(engine)
    signer = IdentitySigner(
        settings.identity_private_key.get_secret_value(), ttl_seconds=settings.identity_ttl_seconds
    )
    resolver = KeyResolver(
        directory,
        signer,
        cache_seconds=settings.key_cache_seconds,
        token_ttl_seconds=settings.identity_ttl_seconds,
        unknown_key_seconds=settings.unknown_key_cache_seconds,
        # Failed authentication per client address: only failures spend (docs/security.md).
        failures=TokenBuckets(
            settings.auth_failures_per_minute / 60,
            settings.auth_failures_per_minute,
            max_buckets=MAX_FAILING_ADDRESSES,
        ),
    )
    timeout = httpx.Timeout(
        settings.upstream_timeout_seconds, connect=settings.upstream_connect_timeout_seconds
    )
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=50)
    upstreams = {
        name: httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits)
        for name, url in (
            ("ingest", settings.ingest_url),
            ("kpi-engine", settings.kpi_engine_url),
            ("settlement", settings.settlement_url),
        )
    }
    return Components(
        engine,
        directory,
        resolver,
        SharedRateLimits(
            settings.database_url,
            settings.db_schema,
            settings.rate_limit_per_second,
            settings.rate_limit_burst,
        ),
        upstreams,
        SettlementContracts(upstreams["settlement"], ttl_seconds=settings.key_cache_seconds),
        PostgresIdempotencyStore(engine),
    )
