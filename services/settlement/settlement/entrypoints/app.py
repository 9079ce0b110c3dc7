"""The settlement application: HTTP API and the change-feed consumer, opened and closed in lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from pydantic import TypeAdapter

from settlement import bootstrap
from settlement.adapters.migrate import migrate
from settlement.config import Settings
from settlement.domain.contract import Contract
from settlement.entrypoints.errors import error_map
from settlement.entrypoints.routes import router
from settlement.entrypoints.watch import BlockedStatementWatch
from settlement.handlers import publish_targets
from vr_shared.db import database_reachable
from vr_shared.identity import gateway_verifier
from vr_shared.kafka import ensure_topics
from vr_shared.runtime import settle_heap
from vr_shared.web import add_common_middleware, document_request_body, install_error_map, ops_router

log = logging.getLogger(__name__)


def _report_stop(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("change-feed consumer stopped", exc_info=task.exception())


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        components = bootstrap.build(settings)
        await migrate(components.engine, settings.db_schema)
        await ensure_topics(settings.kafka_bootstrap_servers, components.topics)
        await components.consumer.start()
        app.state.components = components
        app.state.store, app.state.service = components.store, components.service
        consuming = asyncio.create_task(components.updates.run(), name="consume-kpi-updates")
        consuming.add_done_callback(_report_stop)
        app.state.consuming = consuming
        for stored in await components.store.contracts_of(None):  # targets for dashboards from the start
            publish_targets(stored.contract)
        watch = BlockedStatementWatch(
            components.store, components.service, interval_s=settings.blocked_check_interval_seconds
        )
        watching = asyncio.create_task(watch.run(), name="watch-blocked-statements")
        settle_heap()
        log.info(
            "settlement ready", extra={"schema": settings.db_schema, "kpi_engine": settings.kpi_engine_url}
        )
        try:
            yield
        finally:
            for task in (consuming, watching):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await components.consumer.stop()
            await components.http.aclose()
            await components.engine.dispose()

    app = FastAPI(
        title="Value Realization — settlement",
        version="1.0.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.identity_verifier = gateway_verifier(
        settings.service_name,
        settings.identity_public_key,
        max_ttl_seconds=settings.identity_max_ttl_seconds,
    )
    install_error_map(app, error_map(settings.retry_after_seconds))
    add_common_middleware(app, settings.service_name, settings.max_body_bytes)
    app.include_router(router)
    # Contract documents are validated by the domain (errors with JSON paths); their schema is documented.
    for path, method in (("/v1/contracts", "post"), ("/v1/contracts/{contract_id}", "put")):
        document_request_body(app, path, method, TypeAdapter(Contract), ("application/json",))

    async def database_ready() -> bool:
        components = getattr(app.state, "components", None)
        return components is not None and await database_reachable(components.engine)

    async def consumer_running() -> bool:
        consuming = getattr(app.state, "consuming", None)
        return consuming is not None and not consuming.done()

    app.include_router(ops_router({"database": database_ready, "change_feed": consumer_running}))
    return app
