"""The whole stack behind the gateway, over real HTTP: ingest, KPI engine and settlement served on
loopback, the gateway in front with a bootstrap admin key. One stack per test module."""

from __future__ import annotations

import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from gateway.config import Settings
from gateway.entrypoints.app import create_app
from ingest.entrypoints.app import create_app as create_ingest_app
from kpi_engine.entrypoints.app import create_app as create_engine_app
from settlement.entrypoints.app import create_app as create_settlement_app
from tests.integration.conftest import ingest_settings
from tests.integration.kpi.test_engine_service import engine_settings
from tests.integration.settlement.conftest import settlement_settings
from tests.support.identity import GATEWAY_PRIVATE_KEY
from tests.support.infrastructure import Infrastructure
from tests.support.servers import serving
from vr_shared.db import create_engine

ADMIN_KEY = "vrk_" + secrets.token_urlsafe(32)  # random: a service refuses a weak one


@dataclass
class GatewayStack:
    client: httpx.AsyncClient  # the gateway, over HTTP
    url: str
    upstreams: dict[str, str]
    settings: Settings

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_KEY}"}


def gateway_settings(infra: Infrastructure, upstreams: dict[str, str], **overrides: Any) -> Settings:
    return Settings.model_validate(
        {
            "kafka_bootstrap_servers": infra.kafka_bootstrap_servers,
            "database_url": infra.database_url,
            "identity_private_key": GATEWAY_PRIVATE_KEY,
            "db_schema": f"gateway_test_{uuid.uuid4().hex[:10]}",
            "ingest_url": upstreams["ingest"],
            "kpi_engine_url": upstreams["kpi-engine"],
            "settlement_url": upstreams["settlement"],
            "bootstrap_admin_key": ADMIN_KEY,
            "key_cache_seconds": 0.5,
            "rate_limit_per_second": 1000,
            "rate_limit_burst": 1000,
            **overrides,
        }
    )


@contextlib.asynccontextmanager
async def gateway_in_front(
    infra: Infrastructure, upstreams: dict[str, str], **overrides: Any
) -> AsyncIterator[GatewayStack]:
    settings = gateway_settings(infra, upstreams, **overrides)
    async with serving(create_app(settings)) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        yield GatewayStack(client, url, upstreams, settings)
    await drop_schemas(infra, settings.db_schema)


async def drop_schemas(infra: Infrastructure, *schemas: str) -> None:
    admin = create_engine(infra.database_url)
    async with admin.begin() as conn:
        for schema in schemas:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    await admin.dispose()


@contextlib.asynccontextmanager
async def services_running(
    infra: Infrastructure, **settlement_overrides: Any
) -> AsyncIterator[dict[str, str]]:
    """Ingest, the KPI engine and settlement over HTTP; settlement with these settings changed."""
    ingest_config = ingest_settings(infra.kafka_bootstrap_servers)
    engine_config = engine_settings(infra, ingest_config.events_topic)
    async with (
        serving(create_ingest_app(ingest_config)) as ingest_url,
        serving(create_engine_app(engine_config)) as engine_url,
    ):
        settlement_config = settlement_settings(
            infra, engine_url, engine_config.updates_topic, **settlement_overrides
        )
        async with serving(create_settlement_app(settlement_config)) as settlement_url:
            yield {"ingest": ingest_url, "kpi-engine": engine_url, "settlement": settlement_url}
    await drop_schemas(infra, engine_config.db_schema, settlement_config.db_schema)


@pytest.fixture(scope="module")
async def services(infrastructure: Infrastructure) -> AsyncIterator[dict[str, str]]:
    async with services_running(infrastructure) as running:
        yield running


@pytest.fixture(scope="module")
async def stack(infrastructure: Infrastructure, services: dict[str, str]) -> AsyncIterator[GatewayStack]:
    async with gateway_in_front(infrastructure, services) as running:
        yield running
