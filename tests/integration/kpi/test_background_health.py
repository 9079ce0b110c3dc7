"""The KPI engine's liveness follows its consumer loop: while it runs `/healthz` answers ok; once it
stopped (here: its broker client was closed under it), `/healthz` answers 503 naming it, so the
orchestrator restarts the engine and the loop resumes from its last commit (docs/operations.md)."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import text

from kpi_engine.entrypoints.app import create_app
from tests.integration.kpi.test_engine_service import engine_settings
from tests.support.infrastructure import Infrastructure
from tests.support.waiting import eventually
from vr_shared.db import create_engine


async def test_healthz_fails_once_the_consumer_loop_stopped(infrastructure: Infrastructure) -> None:
    settings = engine_settings(infrastructure, f"test.events.{uuid.uuid4().hex[:10]}")
    app = create_app(settings)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://kpi-engine") as client:
                healthy = await client.get("/healthz")
                assert (healthy.status_code, healthy.json()) == (200, {"status": "ok"})

                await app.state.components.consumer.stop()  # the loop's next poll fails: it stops

                stopped = await eventually(lambda: client.get("/healthz"), lambda r: r.status_code == 503)
                assert stopped.json() == {"status": "stopped", "stopped": ["consume-events"]}
    finally:
        admin = create_engine(infrastructure.database_url)
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{settings.db_schema}" CASCADE'))
        await admin.dispose()
