"""Settlement's own PostgreSQL away is a 503 with its `Retry-After` (its error map), like the KPI engine
away — not a 500 the gateway would pass on; a statement or a login it refuses, or an OS error that is not
the network's, stays a 500. The adapter's background retries (`can_pass`) draw the same line."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from settlement.adapters.failures import can_pass
from settlement.entrypoints.errors import error_map
from vr_shared.web import install_error_map

Failing = Callable[[], Exception]
Ask = Callable[[Failing], Awaitable[httpx.Response]]


def _engine_failing_with(error: Failing) -> AsyncEngine:
    async def connect() -> asyncpg.Connection:
        raise error()

    return create_async_engine("postgresql+asyncpg://", async_creator=connect)


@pytest.fixture
async def ask() -> AsyncIterator[Ask]:
    """A route reading settlement's database, answered through settlement's error map."""
    engines: list[AsyncEngine] = []

    async def asking(error: Failing) -> httpx.Response:
        engine = _engine_failing_with(error)
        engines.append(engine)
        app = FastAPI()
        install_error_map(app, error_map(retry_after_seconds=5))

        @app.get("/v1/contracts")
        async def contracts() -> list[str]:
            async with engine.connect() as conn:
                return [str(row[0]) for row in await conn.execute(text("SELECT id FROM contracts"))]

        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://settlement") as client:
            return await client.get("/v1/contracts")

    yield asking
    for engine in engines:
        await engine.dispose()


AWAY: list[Failing] = [
    lambda: asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
    lambda: asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
    lambda: ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)"),
]
NEVER_CURED: list[Failing] = [
    lambda: asyncpg.exceptions.InvalidPasswordError("password authentication failed"),
    lambda: FileNotFoundError(2, "No such file or directory", "/run/secrets/db-password"),
    lambda: IsADirectoryError(21, "Is a directory", "/etc/vr"),
]


@pytest.mark.parametrize("error", AWAY)
async def test_the_database_away_is_503_with_retry_after(ask: Ask, error: Failing) -> None:
    answer = await ask(error)
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == "5"
    assert answer.json()["detail"] == "the database cannot answer now; retry in 5 s"


@pytest.mark.parametrize("error", NEVER_CURED)
async def test_what_no_retry_cures_stays_a_500(ask: Ask, error: Failing) -> None:
    answer = await ask(error)
    assert answer.status_code == 500, answer.text
    assert "retry-after" not in answer.headers


@pytest.mark.parametrize(
    ("error", "passes"), [*((e, True) for e in AWAY), *((e, False) for e in NEVER_CURED)]
)
async def test_background_work_retries_only_the_database_away(error: Failing, passes: bool) -> None:
    """A missing file met while connecting would be retried forever, holding back every other one."""
    engine = _engine_failing_with(error)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # as the store's callers meet it
        assert can_pass(exc) is passes
    else:
        pytest.fail("the connect did not fail")
    finally:
        await engine.dispose()
