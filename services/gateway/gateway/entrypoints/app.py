"""The gateway application: clients opened and closed in lifespan, one error map, one OpenAPI."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

from gateway import bootstrap, metrics
from gateway.adapters.migrate import migrate
from gateway.config import Settings
from gateway.domain.keys import PLATFORM_TENANT
from gateway.entrypoints.errors import error_map
from gateway.entrypoints.idempotency import IdempotencyMiddleware
from gateway.entrypoints.openapi import MergedOpenApi
from gateway.entrypoints.routes import router
from vr_shared.db import database_reachable
from vr_shared.runtime import settle_heap
from vr_shared.web import add_common_middleware, install_error_map, ops_router

log = logging.getLogger(__name__)


def count_answer(route: str, status: int, state: Mapping[str, Any]) -> None:
    """`vr_gateway_requests_total{route, status, role}`: API traffic by the caller's role (probes and
    scrapes are not API traffic)."""
    if route not in ("/metrics", "/healthz", "/readyz"):
        metrics.REQUESTS.labels(route, str(status), state.get("role", "anonymous")).inc()


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        components = bootstrap.build(settings)
        await migrate(components.engine, settings.db_schema)
        await components.limits.open()
        await components.directory.bootstrap_key(
            None if settings.bootstrap_admin_key is None else settings.bootstrap_admin_key.get_secret_value(),
            PLATFORM_TENANT,
        )
        app.state.components = components
        app.state.openapi_document = MergedOpenApi(app.openapi(), components.upstreams)
        settle_heap()
        log.info("gateway ready", extra={"schema": settings.db_schema})
        try:
            yield
        finally:
            for client in components.upstreams.values():
                await client.aclose()
            await components.limits.close()
            await components.engine.dispose()

    app = FastAPI(
        title="Value Realization API",
        version="1.0.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi-gateway.json",
        description="Outcome-based partnerships between health systems and their technology vendors: "
        "events in, exact KPIs, explained settlements. Every call needs `Authorization: Bearer <API key>`.",
    )
    app.state.settings = settings
    install_error_map(app, error_map())
    # Added before the common middleware, so it runs inside it: the body is bounded before this reads it.
    app.add_middleware(IdempotencyMiddleware)
    add_common_middleware(app, settings.service_name, settings.max_body_bytes, on_answer=count_answer)
    app.include_router(router)

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi() -> Response:
        return Response(await app.state.openapi_document.serialized(), media_type="application/json")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="Value Realization API")

    async def database_ready() -> bool:
        components = getattr(app.state, "components", None)
        return components is not None and await database_reachable(components.engine)

    app.include_router(ops_router({"database": database_ready}))
    return app
