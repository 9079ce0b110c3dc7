"""`Idempotency-Key` on every POST, through the gateway (docs/api.md, "Retrying safely"): a retry gets the
first answer and nothing is done twice; the same key for another request is 422; an answer that says
"try again" is not kept; a retry while the first is in flight is 409."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response

from tests.integration.gateway.conftest import GatewayStack, gateway_in_front
from tests.integration.gateway.test_gateway import bearer, key, tenant
from tests.support.infrastructure import Infrastructure
from tests.support.servers import serving


def _again(headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "Idempotency-Key": str(uuid.uuid4())}


async def test_a_retried_key_creation_makes_one_key_and_answers_the_same(stack: GatewayStack) -> None:
    health = await tenant(stack, facilities=("main",))
    admin = _again(stack.admin())
    body = {"tenant_id": health, "role": "pipeline", "name": "nightly feed"}
    first = await stack.client.post("/v1/api-keys", json=body, headers=admin)
    retry = await stack.client.post("/v1/api-keys", json=body, headers=admin)
    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.json() == first.json()  # the same id and the same secret, shown again to its creator
    assert retry.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    listed = await stack.client.get("/v1/api-keys", params={"tenant_id": health}, headers=stack.admin())
    assert [k["name"] for k in listed.json()["items"]] == ["nightly feed"]
    other = await stack.client.post("/v1/api-keys", json={**body, "name": "another"}, headers=admin)
    assert other.status_code == 422 and other.json()["title"] == "Idempotency-Key reused"


async def test_a_retried_tenant_and_event_batch_answer_as_the_first_time(stack: GatewayStack) -> None:
    admin = _again(stack.admin())
    new = {"id": f"t-{uuid.uuid4().hex[:10]}", "name": "Retry", "kind": "health_system", "timezone": "UTC"}
    created = [
        await stack.client.post("/v1/tenants", json={**new, "facilities": ["main"]}, headers=admin)
        for _ in range(2)
    ]
    assert [c.status_code for c in created] == [201, 201]  # not 409 "Tenant exists" for the retry
    pipeline = _again(bearer(await key(stack, new["id"], "pipeline")))
    event = {
        "id": "retry-1",
        "source": "adt",
        "type": "claim.submitted",
        "time": "2026-11-02T09:00:00Z",
        "facility": "main",
        "data": {"claim_ref": "C1", "amount": "10.00", "clean": True},
    }
    sent = [await stack.client.post("/v1/events", json=[event], headers=pipeline) for _ in range(2)]
    assert [s.status_code for s in sent] == [202, 202] and sent[0].json() == sent[1].json()
    assert sent[1].headers["idempotent-replayed"] == "true"


async def test_a_bad_key_value_is_400(stack: GatewayStack) -> None:
    answer = await stack.client.post(
        "/v1/tenants", json={}, headers={**stack.admin(), "Idempotency-Key": "x" * 256}
    )
    assert answer.status_code == 400 and "Idempotency-Key" in answer.json()["detail"]


async def test_try_again_answers_are_not_kept_and_a_request_in_flight_is_409(
    infrastructure: Infrastructure, services: dict[str, str]
) -> None:
    calls: list[str] = []
    release, second_arrived = asyncio.Event(), asyncio.Event()
    settlement = FastAPI()

    @settlement.post("/v1/contracts")
    async def contracts(request: Request) -> Response:
        calls.append(request.headers.get("idempotency-key", ""))
        if len(calls) == 2:
            second_arrived.set()
        if len(calls) == 1:
            return Response(status_code=503, headers={"Retry-After": "1"})
        await release.wait()
        return Response(b'{"id": "c"}', status_code=201, media_type="application/json")

    async with (
        serving(settlement) as settlement_url,
        gateway_in_front(infrastructure, {**services, "settlement": settlement_url}) as gw,
    ):
        health = await tenant(gw, facilities=("main",))
        admin = _again(bearer(await key(gw, health, "tenant_admin")))

        async def post() -> httpx.Response:
            return await gw.client.post("/v1/contracts", json={"id": "c"}, headers=admin)

        assert (await post()).status_code == 503  # not kept: the retry is processed anew
        first = asyncio.create_task(post())
        await asyncio.wait_for(second_arrived.wait(), timeout=30)
        busy = await post()
        assert busy.status_code == 409 and busy.headers["retry-after"] == "1"
        release.set()
        answers: list[Any] = [(await first).status_code, (await post()).status_code]
    assert answers == [201, 201]
    assert len(calls) == 2  # the 503, then the one that was kept and replayed
