"""The KPI engine application: HTTP API and the consumer loop, both opened and closed in lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from kpi_engine import bootstrap
from kpi_engine.adapters.migrate import migrate
from kpi_engine.config import Settings
from kpi_engine.entrypoints.gauges import KpiGauges
from kpi_engine.entrypoints.routes import router
from vr_shared.db import database_reachable
from vr_shared.identity import gateway_verifier, issuer
from vr_shared.kafka import ensure_topics
from vr_shared.runtime import settle_heap
from vr_shared.web import add_common_middleware, install_error_map, ops_router

log = logging.getLogger(__name__)


def _report_stop(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        # /readyz turns false; the orchestrator restarts the process and the batch is replayed.
        log.error("consumer stopped", exc_info=task.exception())


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        components = bootstrap.build(settings)
        await migrate(components.engine, settings.db_schema)
        await ensure_topics(settings.kafka_bootstrap_servers, components.topics)
        await components.producer.start()
        await components.consumer.start()
        app.state.components, app.state.reader = components, components.reader
        consuming = asyncio.create_task(components.event_consumer.run(), name="consume-events")
        consuming.add_done_callback(_report_stop)
        app.state.consuming = consuming
        gauges = asyncio.create_task(
            KpiGauges(
                components.engine,
                components.event_consumer.timezones,
                interval_s=settings.kpi_gauge_interval_seconds,
            ).run(),
            name="kpi-gauges",
        )
        settle_heap()
        log.info("kpi-engine ready", extra={"topic": settings.events_topic, "schema": settings.db_schema})
        try:
            yield
        finally:
            for task in (consuming, gauges):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await components.consumer.stop()  # leaves the group: partitions move on at once
            await components.producer.stop()
            await components.engine.dispose()

    app = FastAPI(
        title="Value Realization — KPI engine",
        version="1.0.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.identity_verifier = gateway_verifier(
        settings.service_name,
        settings.identity_public_key,
        max_ttl_seconds=settings.identity_max_ttl_seconds,
        also={issuer("settlement"): settings.settlement_public_key},
    )
    install_error_map(app, {})
    add_common_middleware(app, settings.service_name, settings.max_body_bytes)
    app.include_router(router)

    async def database_ready() -> bool:
        components = getattr(app.state, "components", None)
        return components is not None and await database_reachable(components.engine)

    async def consumer_running() -> bool:
        consuming = getattr(app.state, "consuming", None)
        return consuming is not None and not consuming.done()

    app.include_router(ops_router({"database": database_ready, "consumer": consumer_running}))
    return app
