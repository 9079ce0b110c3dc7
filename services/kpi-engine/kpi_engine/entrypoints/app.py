"""The KPI engine application: HTTP API and the consumer loop, both opened and closed in lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from kpi_engine import bootstrap
from kpi_engine.adapters.migrate import migrate
from kpi_engine.config import Settings
from kpi_engine.entrypoints.consumer import EventConsumer, LoggingRebalanceListener
from kpi_engine.entrypoints.deps import Clock, system_clock
from kpi_engine.entrypoints.errors import error_map
from kpi_engine.entrypoints.gauges import KpiGauges
from kpi_engine.entrypoints.routes import router
from vr_shared.background import BackgroundTasks, database_check
from vr_shared.identity import gateway_verifier, issuer
from vr_shared.kafka import ensure_topics
from vr_shared.runtime import settle_heap
from vr_shared.web import add_common_middleware, install_error_map, ops_router

log = logging.getLogger(__name__)


def event_consumer(components: bootstrap.Components, settings: Settings) -> EventConsumer:
    """The consumer loop on the composed clients: decode → record → commit."""
    components.consumer.subscribe([settings.events_topic], listener=LoggingRebalanceListener())
    return EventConsumer(
        components.consumer,
        components.producer,
        components.engine,
        components.recorder,
        dead_letter_topic=settings.dead_letter_topic,
        updates_topic=settings.updates_topic,
        batch_max_records=settings.batch_max_records,
        retry_backoff_s=settings.retry_backoff_seconds,
    )


def create_app(settings: Settings, clock: Clock = system_clock) -> FastAPI:
    """`clock` is "now" for the query API (open buckets, maturation): the real time unless a test fixes it."""
    tasks = BackgroundTasks()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        components = bootstrap.build(settings)
        consumer = event_consumer(components, settings)
        await migrate(components.engine, settings.db_schema)
        await ensure_topics(settings.kafka_bootstrap_servers, components.topics)
        await components.producer.start()
        await components.consumer.start()
        app.state.components, app.state.event_consumer = components, consumer
        # Stopped, the consumer makes /readyz false; the orchestrator restarts the process and the
        # batch is replayed from its last commit.
        tasks.start("consume-events", consumer.run())
        gauges = KpiGauges(
            components.engine,
            consumer.timezones,
            interval_s=settings.kpi_gauge_interval_seconds,
            clock=clock,
        )
        tasks.start("kpi-gauges", gauges.run())
        settle_heap()
        log.info("kpi-engine ready", extra={"topic": settings.events_topic, "schema": settings.db_schema})
        try:
            yield
        finally:
            await tasks.stop()
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
    app.state.clock = clock
    app.state.identity_verifier = gateway_verifier(
        settings.service_name,
        settings.identity_public_key,
        max_ttl_seconds=settings.identity_max_ttl_seconds,
        also={issuer("settlement"): settings.settlement_public_key},
    )
    install_error_map(app, error_map())
    add_common_middleware(app, settings.service_name, settings.max_body_bytes)
    app.include_router(router)
    database = database_check(lambda: getattr(getattr(app.state, "components", None), "engine", None))
    app.include_router(
        ops_router({"database": database, "consumer": tasks.check("consume-events")}, stopped=tasks.stopped)
    )
    return app
