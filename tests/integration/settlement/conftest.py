"""The whole pipeline for settlement tests: ingest → broker → KPI engine (over HTTP) → settlement.

One stack per test module (each with its own topics and schemas); tests keep apart by tenant and
contract ids.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import text

from kpi_engine.entrypoints.app import create_app as create_engine_app
from settlement.config import Settings
from settlement.entrypoints.app import create_app
from tests.integration.conftest import IngestUnderTest, ingest_settings, running_ingest
from tests.integration.kpi.test_engine_service import engine_settings
from tests.support.identity import GATEWAY_PUBLIC_KEY, SETTLEMENT_PRIVATE_KEY, token
from tests.support.infrastructure import Infrastructure
from tests.support.servers import serving
from vr_shared.db import create_engine
from vr_shared.identity import HEADER, Role, TenantKind


@dataclass
class SettlementStack:
    ingest: IngestUnderTest
    settlement: httpx.AsyncClient
    settings: Settings


def settlement_settings(
    infra: Infrastructure, kpi_engine_url: str, updates_topic: str, **overrides: object
) -> Settings:
    suffix = uuid.uuid4().hex[:10]
    return Settings.model_validate(
        {
            "kafka_bootstrap_servers": infra.kafka_bootstrap_servers,
            "database_url": infra.database_url,
            "identity_public_key": GATEWAY_PUBLIC_KEY,
            "service_private_key": SETTLEMENT_PRIVATE_KEY,
            "db_schema": f"settlement_test_{suffix}",
            "kpi_engine_url": kpi_engine_url,
            "updates_topic": updates_topic,
            "consumer_group": f"test-settlement-{suffix}",
            "session_timeout_ms": 3000,
            **overrides,
        }
    )


@pytest.fixture(scope="module")
async def stack(infrastructure: Infrastructure) -> AsyncIterator[SettlementStack]:
    ingest_config = ingest_settings(infrastructure.kafka_bootstrap_servers)
    engine_config = engine_settings(infrastructure, ingest_config.events_topic)
    engine_app = create_engine_app(engine_config)
    async for ingest in running_ingest(ingest_config):
        async with serving(engine_app) as engine_url:
            settings = settlement_settings(infrastructure, engine_url, engine_config.updates_topic)
            app = create_app(settings)
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://settlement") as client:
                    yield SettlementStack(ingest, client, settings)
    admin = create_engine(infrastructure.database_url)
    async with admin.begin() as conn:
        for schema in (engine_config.db_schema, settings.db_schema):
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    await admin.dispose()


class PartyHeaders(Mapping[str, str]):
    """Headers of a caller, with a token signed afresh each time they are used: module constants
    outlive a token's 60 seconds in a long test session."""

    def __init__(
        self, tenant: str, role: Role, facilities: tuple[str, ...], kind: TenantKind, tz: str
    ) -> None:
        self._identity = {
            "tenant": tenant,
            "role": role,
            "facilities": frozenset(facilities),
            "tenant_kind": kind,
            "timezone": tz,
        }

    def __getitem__(self, key: str) -> str:
        if key != HEADER:
            raise KeyError(key)
        return token(**self._identity)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[str]:
        return iter([HEADER])

    def __len__(self) -> int:
        return 1


def as_party(
    tenant: str,
    role: Role = "tenant_admin",
    facilities: tuple[str, ...] = (),
    *,
    vendor: bool = False,
    tz: str = "UTC",
) -> PartyHeaders:
    """Headers of a caller of `tenant` (a health system with `facilities`, or a vendor)."""
    return PartyHeaders(tenant, role, facilities, "vendor" if vendor else "health_system", tz)
