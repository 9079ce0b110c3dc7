"""The KPI engine's own PostgreSQL away (starting, out of connections, refusing connections) is a 503 with
`Retry-After` — not a 500 the gateway would pass on as "an error on our side"; a login it refuses or an OS
error that is not the network's stays a 500.

The app is the real one (`create_app`), its reader the real one, on an engine whose every connection
fails as asyncpg fails; no lifespan runs, so no database or broker is needed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace

import asyncpg
import httpx
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from kpi_engine.adapters.queries import PostgresKpiReader
from kpi_engine.config import Settings
from kpi_engine.entrypoints.app import create_app
from kpi_engine.entrypoints.errors import RETRY_AFTER_S
from tests.support.identity import GATEWAY_PUBLIC_KEY, SETTLEMENT_PUBLIC_KEY, token
from vr_shared.identity import HEADER
from vr_shared.roles import Role

Failing = Callable[[], Exception]
Ask = Callable[[Failing], Awaitable[httpx.Response]]


@pytest.fixture
async def ask_engine_whose_database_fails_with() -> AsyncIterator[Ask]:
    engines = []

    async def ask(error: Failing) -> httpx.Response:
        async def connect() -> asyncpg.Connection:
            raise error()

        engine = create_async_engine("postgresql+asyncpg://", async_creator=connect)
        engines.append(engine)
        settings = Settings.model_validate(
            {"identity_public_key": GATEWAY_PUBLIC_KEY, "settlement_public_key": SETTLEMENT_PUBLIC_KEY}
        )
        app = create_app(settings)
        app.state.components = SimpleNamespace(engine=engine, reader=PostgresKpiReader(engine))
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://kpi-engine") as client:
            return await client.get(
                "/v1/events/billing/e1", headers={HEADER: token(service="kpi-engine", role=Role.OPS)}
            )

    yield ask
    for engine in engines:
        await engine.dispose()


@pytest.mark.parametrize(
    "error",
    [
        lambda: asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        lambda: asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
        lambda: ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)"),
    ],
)
async def test_the_database_away_is_503_with_retry_after(
    ask_engine_whose_database_fails_with: Ask, error: Failing
) -> None:
    answer = await ask_engine_whose_database_fails_with(error)
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == str(RETRY_AFTER_S) == "2"
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["detail"] == "the database cannot answer now; retry in 2 s"


@pytest.mark.parametrize(
    "error",
    [
        lambda: asyncpg.exceptions.InvalidPasswordError("password authentication failed"),
        lambda: PermissionError(13, "Permission denied", "/etc/vr/db-ca.pem"),
    ],
)
async def test_what_no_retry_cures_stays_a_500(
    ask_engine_whose_database_fails_with: Ask, error: Failing
) -> None:
    answer = await ask_engine_whose_database_fails_with(error)
    assert answer.status_code == 500, answer.text
    assert "retry-after" not in answer.headers
