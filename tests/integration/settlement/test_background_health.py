"""Settlement's liveness follows its background work: while the change-feed consumer runs `/healthz`
answers ok; once it stopped (here: its broker client was closed under it), `/healthz` answers 503 naming
it, so the orchestrator restarts the process and reconciliation resumes from the last commit."""

from __future__ import annotations

import httpx

from settlement.entrypoints.app import create_app
from tests.integration.settlement.conftest import SettlementStack, settlement_settings
from tests.support.infrastructure import Infrastructure
from tests.support.waiting import eventually


async def test_healthz_fails_once_the_change_feed_consumer_stopped(
    stack: SettlementStack, infrastructure: Infrastructure
) -> None:
    settings = settlement_settings(
        infrastructure, stack.settings.kpi_engine_url, stack.settings.updates_topic
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://settlement") as client:
            healthy = await client.get("/healthz")
            assert (healthy.status_code, healthy.json()) == (200, {"status": "ok"})

            await app.state.components.consumer.stop()  # the loop's next poll fails: it stops

            stopped = await eventually(lambda: client.get("/healthz"), lambda r: r.status_code == 503)
            assert stopped.json() == {"status": "stopped", "stopped": ["consume-kpi-updates"]}
            assert (await client.get("/readyz")).status_code == 503
