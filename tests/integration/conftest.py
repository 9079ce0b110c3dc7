"""An in-process ingest application per test module, on the real broker, with its own topic."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from ingest.config import Settings
from ingest.entrypoints.app import create_app
from tests.support.identity import GATEWAY_PUBLIC_KEY, PSEUDONYM_KEY
from tests.support.infrastructure import Infrastructure


@dataclass
class IngestUnderTest:
    client: httpx.AsyncClient
    settings: Settings


def ingest_settings(bootstrap_servers: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "kafka_bootstrap_servers": bootstrap_servers,
        "identity_public_key": GATEWAY_PUBLIC_KEY,
        "pseudonym_key": PSEUDONYM_KEY,
        "events_topic": f"test.events.{uuid.uuid4().hex[:10]}",
        "events_topic_partitions": 4,
        **overrides,
    }
    return Settings.model_validate(values)


async def running_ingest(settings: Settings) -> AsyncIterator[IngestUnderTest]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
            yield IngestUnderTest(client, settings)


@pytest.fixture(scope="module")
async def ingest(infrastructure: Infrastructure) -> AsyncIterator[IngestUnderTest]:
    async for running in running_ingest(ingest_settings(infrastructure.kafka_bootstrap_servers)):
        yield running
