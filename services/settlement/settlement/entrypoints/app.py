"""The settlement application: HTTP API and the change-feed consumer, opened and closed in lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from pydantic import TypeAdapter

from settlement import bootstrap
from settlement.adapters.migrate import migrate
from settlement.config import Settings
from settlement.domain.contract import Contract
from settlement.entrypoints.delivery import WebhookDeliveryWorker
from settlement.entrypoints.errors import error_map
from settlement.entrypoints.routes import router
from settlement.entrypoints.updates import KpiUpdatesConsumer
from settlement.entrypoints.watch import PeriodWatch
from settlement.entrypoints.webhook_routes import router as webhook_router
from settlement.handlers import publish_targets
from vr_shared.background import BackgroundTasks, database_check
from vr_shared.identity import gateway_verifier
from vr_shared.kafka import ensure_topics
from vr_shared.runtime import settle_heap
from vr_shared.web import add_common_middleware, document_request_body, install_error_map, ops_router

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> FastAPI:
    tasks = BackgroundTasks()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        components = bootstrap.build(settings)
        await migrate(components.engine, settings.db_schema)
        await ensure_topics(settings.kafka_bootstrap_servers, components.topics)
        await components.consumer.start()
        app.state.components = components
        updates = KpiUpdatesConsumer(components.consumer, components.store, components.service)
        tasks.start("consume-kpi-updates", updates.run())
        for stored in await components.store.contracts_of(None):  # targets for dashboards from the start
            publish_targets(stored.contract)
        watch = PeriodWatch(
            components.store, components.service, interval_s=settings.blocked_check_interval_seconds
        )
        tasks.start("watch-periods", watch.run())
        delivery = WebhookDeliveryWorker(
            components.webhooks,
            components.sender,
            schedule=settings.retry_schedule(),
            disable_after_s=settings.webhook_disable_after_seconds,
            poll_interval_s=settings.webhook_poll_interval_seconds,
            concurrency=settings.webhook_concurrency,
            lease_s=settings.webhook_timeout_seconds + 30,
        )
        tasks.start("deliver-webhooks", delivery.run())
        settle_heap()
        log.info(
            "settlement ready", extra={"schema": settings.db_schema, "kpi_engine": settings.kpi_engine_url}
        )
        try:
            yield
        finally:
            await tasks.stop()
            await components.consumer.stop()
            await components.http.aclose()
            await components.webhook_http.aclose()
            components.name_lookups.close()
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
    app.include_router(webhook_router)
    # Contract documents are validated by the domain (errors with JSON paths); their schema is documented.
    for path, method in (("/v1/contracts", "post"), ("/v1/contracts/{contract_id}", "put")):
        document_request_body(app, path, method, TypeAdapter(Contract), ("application/json",))
    database = database_check(lambda: getattr(getattr(app.state, "components", None), "engine", None))
    app.include_router(
        ops_router(
            {"database": database, "change_feed": tasks.check("consume-kpi-updates")}, stopped=tasks.stopped
        )
    )
    return app
