"""The ingest FastAPI application: `create_app(settings)`; clients opened and closed in lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka.errors import KafkaError
from fastapi import FastAPI
from pydantic import TypeAdapter

from ingest import bootstrap, metrics
from ingest.config import Settings
from ingest.entrypoints.errors import error_map
from ingest.entrypoints.fhir_routes import router as fhir_router
from ingest.entrypoints.routes import router
from vr_shared.background import BackgroundTasks
from vr_shared.events import Event
from vr_shared.identity import gateway_verifier
from vr_shared.kafka import broker_reachable, ensure_topics
from vr_shared.runtime import settle_heap
from vr_shared.web import add_common_middleware, document_request_body, install_error_map, ops_router

log = logging.getLogger(__name__)
CONNECT_RETRY_SECONDS = 2.0


async def _connect(components: bootstrap.Components, settings: Settings) -> None:
    """Create the events topic if missing and start the producer, retrying until the broker answers."""
    while True:
        try:
            await ensure_topics(settings.kafka_bootstrap_servers, [components.events_topic])
            await components.producer.start()
        except (KafkaError, OSError) as exc:
            log.warning("broker unreachable; retrying", extra={"error": type(exc).__name__})
            await asyncio.sleep(CONNECT_RETRY_SECONDS)
            continue
        components.connected.set()
        log.info("broker reached", extra={"topic": settings.events_topic})
        return


def create_app(settings: Settings) -> FastAPI:
    tasks = BackgroundTasks()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # aiokafka clients bind to the running loop, so the composition root runs here.
        components = bootstrap.build(settings)
        app.state.components = components
        # Serving does not wait for the broker: started during an outage, ingest answers 503 with
        # Retry-After until it reaches the broker (pipelines retry), never a gateway's 502.
        connecting = tasks.start("connect-broker", _connect(components, settings))
        # With the broker there (the usual start) the first attempt succeeds before anything is served.
        await asyncio.wait([connecting], timeout=2 * settings.publish_timeout_seconds)
        settle_heap()
        log.info("ingest ready", extra={"topic": settings.events_topic})
        try:
            yield
        finally:
            await tasks.stop()
            if components.connected.is_set():
                # Flush what is in flight (bounded), then close: no acknowledged event is lost.
                try:
                    await asyncio.wait_for(
                        components.producer.flush(), timeout=settings.publish_timeout_seconds
                    )
                except TimeoutError:
                    log.warning("producer flush timed out at shutdown")
            await components.producer.stop()

    app = FastAPI(
        title="Value Realization — ingest", version="1.0.0", lifespan=lifespan, docs_url=None, redoc_url=None
    )
    app.state.identity_verifier = gateway_verifier(
        settings.service_name,
        settings.identity_public_key,
        max_ttl_seconds=settings.identity_max_ttl_seconds,
    )
    install_error_map(app, error_map(settings.retry_after_seconds))
    add_common_middleware(app, settings.service_name, settings.max_body_bytes)
    app.include_router(router)
    app.include_router(fhir_router)
    # The body is read by the route itself (JSON, CloudEvents structured or batch, NDJSON); documented here.
    document_request_body(
        app,
        "/v1/events",
        "post",
        TypeAdapter(Event | list[Event]),
        ("application/json", "application/cloudevents+json", "application/cloudevents-batch+json"),
    )

    async def started() -> bool:
        return getattr(app.state, "components", None) is not None

    async def broker_answers() -> bool:
        components: bootstrap.Components | None = getattr(app.state, "components", None)
        reachable = (
            components is not None
            and components.connected.is_set()
            and await broker_reachable(components.producer)
        )
        metrics.BROKER_REACHABLE.set(reachable)
        return reachable

    # Ready means "can serve": while the broker is away ingest still answers every request, with 503 and
    # Retry-After for events. Taken out of its Service instead, pipelines would meet the gateway's 502.
    app.include_router(
        ops_router({"started": started}, reported={"broker": broker_answers}, stopped=tasks.stopped)
    )
    return app
