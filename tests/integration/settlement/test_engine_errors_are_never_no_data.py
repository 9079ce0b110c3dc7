"""A KPI engine that refuses, fails or hangs is an error — never "no data", never an adjustment
(docs/settlement.md).

Settlement reads the real KPI engine through a switch that can pass requests on, answer 401 or 503, or
hang past settlement's timeout. A final period receives a late outage; while the engine cannot be read,
reconciling answers 503 and books nothing; once it can, exactly one adjustment is booked. The refusal
(401) meets the change notice: the change-feed consumer does not retry a refusal in a loop, it leaves the
period pending and the period watch (every second here) books it once the engine answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from settlement.entrypoints.app import create_app
from tests.integration.settlement.conftest import SettlementStack, as_party, settlement_settings
from tests.integration.settlement.test_sla_from_events import CONTRACT, complete, outage
from tests.support.infrastructure import Infrastructure
from tests.support.servers import serving
from tests.support.waiting import eventually

FACILITY = "sla-main"  # the outage helpers' facility, under another tenant below
HEALTH = as_party("err-health", facilities=(FACILITY,))
PIPELINE = as_party("err-health", role="pipeline", facilities=(FACILITY,))
BILLING = as_party("sla-vendor", role="billing", vendor=True)


class EngineSwitch:
    """In front of the real engine: `pass`, `401`, `503` or `hang`."""

    def __init__(self, engine_url: str) -> None:
        self.mode = "pass"
        self.app = FastAPI()
        self._engine_url = engine_url
        self.app.add_api_route("/{path:path}", self._handle, methods=["GET", "POST"])

    async def _handle(self, path: str, request: Request) -> Response:
        if self.mode == "hang":
            await asyncio.sleep(30)
        if self.mode in ("401", "503"):
            body = b'{"title": "refused", "detail": "switched off by the test"}'
            return Response(body, status_code=int(self.mode), media_type="application/problem+json")
        async with httpx.AsyncClient(base_url=self._engine_url) as client:
            answer = await client.request(
                request.method,
                f"/{path}",
                content=await request.body(),
                headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
            )
        return Response(answer.content, status_code=answer.status_code, media_type="application/json")


@pytest.fixture
async def through_switch(
    stack: SettlementStack, infrastructure: Infrastructure
) -> AsyncIterator[tuple[httpx.AsyncClient, EngineSwitch]]:
    switch = EngineSwitch(stack.settings.kpi_engine_url)
    async with serving(switch.app) as switch_url:
        settings = settlement_settings(infrastructure, switch_url, stack.settings.updates_topic)
        settings = settings.model_copy(
            update={"kpi_timeout_seconds": 1.0, "blocked_check_interval_seconds": 1.0}
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://settlement") as client:
                yield client, switch


async def test_reconcile_books_nothing_while_the_engine_refuses_fails_or_hangs(
    stack: SettlementStack, through_switch: tuple[httpx.AsyncClient, EngineSwitch]
) -> None:
    settlement, switch = through_switch
    events = [
        outage("err-may", "2026-05-05T00:00:00Z", "2026-05-05T10:00:00Z"),  # 600 of 44,640 minutes
        complete("systems", through="2026-06-01T00:00:00Z"),
    ]
    assert (await stack.ingest.client.post("/v1/events", json=events, headers=PIPELINE)).status_code == 202
    contract = {
        **CONTRACT,
        "id": "err-2026",
        "health_system": "err-health",
        "period": "month",
        "runout_days": 0,
    }
    assert (await settlement.post("/v1/contracts", json=contract, headers=HEALTH)).status_code == 201
    path = "/v1/contracts/err-2026/settlements/2026-05"

    async def statement() -> dict[str, Any]:
        return dict((await settlement.get(path, headers=HEALTH)).json())

    # May: 100 × 44,040 / 44,640 = 98.656 % → below 98.50? no; below 99.99 → 0.05 × 10,000 = −500.00.
    await eventually(statement, lambda s: s.get("data_complete") and s["total"] == "-500.00")
    assert (await settlement.post(f"{path}/finalize", headers=BILLING)).status_code == 201

    # A late outage of 12 hours (720 minutes) takes May to 100 × 43,320 / 44,640 = 97.04 %: −1,000.00.
    late = [outage("err-may-late", "2026-05-20T00:00:00Z", "2026-05-20T12:00:00Z")]
    for mode in ("401", "503", "hang"):
        switch.mode = mode
        if mode == "401":
            assert (
                await stack.ingest.client.post("/v1/events", json=late, headers=PIPELINE)
            ).status_code == 202
            await eventually(_engine_has(stack, "err-may-late"), bool)
        answer = await settlement.post(f"{path}/reconcile", headers=BILLING)
        assert answer.status_code == 503, (mode, answer.text)
        assert answer.headers["Retry-After"] == "5"
        await asyncio.sleep(2.5)  # the change-feed consumer's retries meet the same engine meanwhile
        assert (await statement())["adjustments"] == [], mode

    switch.mode = "pass"
    after = await eventually(statement, lambda s: len(s["adjustments"]) == 1)
    (adjustment,) = after["adjustments"]
    assert (adjustment["total_delta"], adjustment["total_after"]) == ("-500.00", "-1000.00")
    assert (await settlement.post(f"{path}/reconcile", headers=BILLING)).json() == {"adjustment": None}


def _engine_has(stack: SettlementStack, event_id: str) -> Any:
    """Whether the engine stored the event (asked of the engine directly, not through the switch)."""

    async def stored() -> bool:
        async with httpx.AsyncClient(base_url=stack.settings.kpi_engine_url) as client:
            answer = await client.get(f"/v1/events/monitoring/{event_id}", headers=PIPELINE)
            return answer.status_code == 200

    return stored
