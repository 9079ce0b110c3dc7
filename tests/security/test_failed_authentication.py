"""Failed authentication is rate-limited per client address; an unknown key is remembered for a while
so repeating it costs no database lookup; the merged OpenAPI document is kept, not rebuilt from three
services for each anonymous request (docs/security.md)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from fastapi import FastAPI, Response

from gateway.entrypoints.app import create_app
from tests.integration.gateway.conftest import drop_schemas, gateway_settings
from tests.support.infrastructure import Infrastructure
from tests.support.servers import serving


async def test_bad_keys_cost_one_lookup_and_an_address_that_keeps_failing_gets_429(
    infrastructure: Infrastructure, services: dict[str, str]
) -> None:
    settings = gateway_settings(infrastructure, services, auth_failures_per_minute=5)
    app = create_app(settings)
    async with serving(app) as url, httpx.AsyncClient(base_url=url) as client:
        directory = app.state.components.directory
        lookups: list[str] = []
        looked_up: Callable[[str], Awaitable[Any]] = directory.key_by_secret

        async def counted(key: str) -> Any:
            lookups.append(key)
            return await looked_up(key)

        directory.key_by_secret = counted  # the real lookup, counted
        bad = {"Authorization": "Bearer vrk_guessed-0000000000000000000000000000000000"}
        answers = [await client.get("/v1/kpis", headers=bad) for _ in range(5)]
        assert [a.status_code for a in answers] == [401] * 5
        assert len(lookups) == 1  # the four repeats were answered from the negative cache
        limited = await client.get(
            "/v1/kpis", headers={"Authorization": "Bearer vrk_another-guess-0000000000"}
        )
        assert limited.status_code == 429, limited.text
        assert int(limited.headers["Retry-After"]) >= 1
        assert limited.headers["content-type"] == "application/problem+json"
        assert len(lookups) == 1  # refused before any lookup
        # Without any key at all: also a failure, also limited.
        assert (await client.get("/v1/kpis")).status_code == 429
    await drop_schemas(infrastructure, settings.db_schema)


async def test_the_openapi_document_is_kept_while_a_service_is_down(
    infrastructure: Infrastructure, services: dict[str, str]
) -> None:
    asked: list[str] = []
    down = FastAPI(openapi_url=None)  # its own /openapi.json would answer instead

    @down.get("/openapi.json")
    async def unavailable() -> Response:
        asked.append("openapi")
        return Response(status_code=503)

    async with serving(down) as down_url:
        settings = gateway_settings(infrastructure, {**services, "settlement": down_url})
        async with serving(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
            documents = [await client.get("/openapi.json") for _ in range(25)]
    await drop_schemas(infrastructure, settings.db_schema)
    assert {d.status_code for d in documents} == {200}
    assert "/v1/events" in documents[-1].json()["paths"]  # the services that answered are in it
    assert len(asked) == 1  # 25 anonymous requests, one upstream call
