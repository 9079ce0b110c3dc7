"""The gateway as a client meets it: tenants, keys, a first session, refusals, limits, failures."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import re
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import StreamingResponse

from devstack.ports import free_port
from tests.integration.gateway.conftest import GatewayStack, gateway_in_front
from tests.support.identity import GATEWAY_PUBLIC_KEY
from tests.support.infrastructure import Infrastructure
from tests.support.servers import serving
from tests.support.waiting import eventually, exposed_metrics, metric_value
from vr_shared.identity import gateway_verifier


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def tenant(stack: GatewayStack, kind: str = "health_system", facilities: tuple[str, ...] = ()) -> str:
    tenant_id = f"t-{uuid.uuid4().hex[:10]}"
    body = {
        "id": tenant_id,
        "name": tenant_id,
        "kind": kind,
        "timezone": "America/New_York",
        "facilities": list(facilities),
    }
    created = await stack.client.post("/v1/tenants", json=body, headers=stack.admin())
    assert created.status_code == 201, created.text
    return tenant_id


async def key(stack: GatewayStack, tenant_id: str, role: str, **extra: Any) -> str:
    created = await stack.client.post(
        "/v1/api-keys",
        json={"tenant_id": tenant_id, "role": role, "name": role, **extra},
        headers=stack.admin(),
    )
    assert created.status_code == 201, created.text
    return str(created.json()["key"])


async def test_first_session_through_the_gateway(stack: GatewayStack) -> None:
    health = await tenant(stack, facilities=("main", "west"))
    pipeline, ops = await key(stack, health, "pipeline"), await key(stack, health, "ops")
    events = [
        {
            "id": f"c{i}",
            "source": "billing",
            "type": "claim.submitted",
            "time": "2026-11-02T09:00:00-05:00",
            "facility": "main",
            "data": {"claim_ref": f"C{i}", "amount": "100.00", "clean": i % 2 == 0},
        }
        for i in range(4)
    ]
    posted = await stack.client.post("/v1/events", json=events, headers=bearer(pipeline))
    assert posted.status_code == 202, posted.text
    assert posted.json()["accepted"] == 4

    async def november() -> dict[str, Any]:
        params = {"from": "2026-11-01", "to": "2026-12-01", "granularity": "month"}
        response = await stack.client.get(
            "/v1/kpis/clean_claim_rate/values", params=params, headers=bearer(ops)
        )
        assert response.status_code == 200, response.text
        return response.json()

    body = await eventually(november, lambda b: b["values"][0]["denominator"] == "4")
    assert body["values"][0]["numerator"] == "2" and body["facilities"] == ["main", "west"]
    looked_up = await stack.client.get("/v1/events/billing/c0", headers=bearer(pipeline))
    assert looked_up.json()["status"] == "stored"


async def test_requests_are_counted_by_service_route_status_and_role(stack: GatewayStack) -> None:
    """One middleware counts every answer: `vr_http_requests_total` under the service route the proxy
    matched (not the catch-all), and `vr_gateway_requests_total` by the caller's role; probes are not
    API traffic."""
    health = await tenant(stack, facilities=("main",))
    billing = await key(stack, health, "billing")
    route = "/v1/contracts/{contract_id}"
    by_role = f'vr_gateway_requests_total{{role="billing",route="{route}",status="404"}}'
    by_service = f'vr_http_requests_total{{method="GET",route="{route}",service="gateway",status="404"}}'
    probes = 'vr_gateway_requests_total{role="anonymous",route="/healthz",status="200"}'

    async def exposed() -> str:
        return exposed_metrics()

    before = await exposed()
    for _ in range(3):
        answer = await stack.client.get("/v1/contracts/no-such-contract", headers=bearer(billing))
        assert answer.status_code == 404, answer.text
    assert (await stack.client.get("/healthz")).status_code == 200
    after = await exposed()
    assert metric_value(after, by_role) - metric_value(before, by_role) == 3
    assert metric_value(after, by_service) - metric_value(before, by_service) == 3
    assert metric_value(after, probes) == 0


async def test_keys_are_shown_once_stored_hashed_and_revocable(stack: GatewayStack) -> None:
    health = await tenant(stack, facilities=("main",))
    admin_key = await key(stack, health, "tenant_admin")
    created = await stack.client.post(
        "/v1/api-keys",
        json={"tenant_id": health, "role": "ops", "name": "dashboards"},
        headers=bearer(admin_key),
    )
    assert created.status_code == 201
    secret, key_id = created.json()["key"], created.json()["id"]
    assert secret.startswith("vrk_") and len(secret) >= 4 + 43  # 32 random bytes, base64url
    listed = (await stack.client.get("/v1/api-keys", headers=bearer(admin_key))).json()["items"]
    assert {k["id"] for k in listed} >= {key_id} and all("key" not in k for k in listed)
    assert all(k["tenant_id"] == health for k in listed)
    assert (await stack.client.get("/v1/kpis", headers=bearer(secret))).status_code == 200
    revoked = await stack.client.delete(f"/v1/api-keys/{key_id}", headers=bearer(admin_key))
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    refused = await stack.client.get("/v1/kpis", headers=bearer(secret))
    assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
    # A tenant admin can neither mint a platform admin nor touch another tenant's keys.
    up = await stack.client.post(
        "/v1/api-keys",
        json={"tenant_id": "platform", "role": "platform_admin", "name": "x"},
        headers=bearer(admin_key),
    )
    assert up.status_code == 403
    other = await tenant(stack)
    across = await stack.client.post(
        "/v1/api-keys", json={"tenant_id": other, "role": "ops", "name": "x"}, headers=bearer(admin_key)
    )
    assert across.status_code == 404


async def test_expired_keys_and_bad_headers_are_unauthenticated(stack: GatewayStack) -> None:
    health = await tenant(stack, facilities=("main",))
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    short_lived = await key(stack, health, "ops", expires_at=soon)
    assert (await stack.client.get("/v1/kpis", headers=bearer(short_lived))).status_code == 200
    await asyncio.sleep(1.6)  # past the expiry and the 0.5 s key cache of this test gateway
    expired = await stack.client.get("/v1/kpis", headers=bearer(short_lived))
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]
    for headers in ({}, {"Authorization": "Basic abc"}, bearer("vrk_" + "x" * 43)):
        answer = await stack.client.get("/v1/kpis", headers=headers)
        assert answer.status_code == 401
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.headers["www-authenticate"].startswith("Bearer")
    metrics = exposed_metrics()
    assert metric_value(metrics, 'vr_gateway_auth_failures_total{reason="expired_key"}') >= 1
    assert metric_value(metrics, 'vr_gateway_auth_failures_total{reason="missing_key"}') >= 1


async def test_roles_are_checked_before_any_service_sees_the_request(stack: GatewayStack) -> None:
    health = await tenant(stack, facilities=("main",))
    ops = await key(stack, health, "ops")
    refused = await stack.client.post("/v1/events", json=[], headers=bearer(ops))
    assert refused.status_code == 403
    assert (await stack.client.get("/v1/nothing-here", headers=bearer(ops))).status_code == 404
    assert (await stack.client.delete("/v1/kpis", headers=bearer(ops))).status_code == 405
    assert (await stack.client.post("/v1/tenants", json={}, headers=bearer(ops))).status_code in (403, 422)


async def test_request_ids_are_kept_or_made(stack: GatewayStack) -> None:
    health = await tenant(stack, facilities=("main",))
    ops = await key(stack, health, "ops")
    given = await stack.client.get("/v1/kpis", headers={**bearer(ops), "X-Request-ID": "trace-123"})
    assert given.headers["x-request-id"] == "trace-123"
    made = await stack.client.get("/v1/kpis", headers=bearer(ops))
    assert len(made.headers["x-request-id"]) >= 16
    assert made.headers.get_list("x-request-id") == [made.headers["x-request-id"]]


async def test_bodies_over_the_limit_are_413(
    infrastructure: Infrastructure, services: dict[str, str]
) -> None:
    async with gateway_in_front(infrastructure, services, max_body_bytes=64 * 1024) as small:
        health = await tenant(small, facilities=("main",))
        pipeline = await key(small, health, "pipeline")
        big = b"[" + b" " * (100 * 1024) + b"]"
        declared = await small.client.post(
            "/v1/events", content=big, headers={**bearer(pipeline), "Content-Type": "application/json"}
        )
        assert declared.status_code == 413

        async def chunks() -> Any:  # no Content-Length: cut off while streaming
            for _ in range(10):
                yield b" " * (16 * 1024)

        streamed = await small.client.post(
            "/v1/events", content=chunks(), headers={**bearer(pipeline), "Content-Type": "application/json"}
        )
        assert streamed.status_code == 413


async def test_rate_limit_answers_429_with_retry_after(
    infrastructure: Infrastructure, services: dict[str, str]
) -> None:
    async with gateway_in_front(
        infrastructure, services, rate_limit_per_second=1, rate_limit_burst=3
    ) as limited:
        health = await tenant(limited, facilities=("main",))
        ops = await key(limited, health, "ops")
        answers = [await limited.client.get("/v1/kpis", headers=bearer(ops)) for _ in range(5)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
        assert int(answers[-1].headers["retry-after"]) >= 1
        exposed = exposed_metrics()
        assert metric_value(exposed, 'vr_gateway_rate_limited_total{role="ops"}') >= 2


async def test_instances_share_a_keys_rate_limit(
    infrastructure: Infrastructure, services: dict[str, str]
) -> None:
    """Two instances behind a balancer: the key's burst is spent once, not once per instance."""
    limits = {"rate_limit_per_second": 0.5, "rate_limit_burst": 4}
    async with gateway_in_front(infrastructure, services, **limits) as first:
        schema = first.settings.db_schema
        async with gateway_in_front(infrastructure, services, db_schema=schema, **limits) as second:
            health = await tenant(first, facilities=("main",))
            ops = await key(first, health, "ops")
            answers = [
                await instance.client.get("/v1/kpis", headers=bearer(ops))
                for instance in (first, second, first, second, first, second)
            ]
            assert [a.status_code for a in answers] == [200, 200, 200, 200, 429, 429]
            # The fifth request is one emission interval (2 s at 0.5/s) early.
            assert [a.headers["retry-after"] for a in answers[4:]] == ["2", "2"]


def _listening_socket() -> socket.socket:
    """Accepts connections (the kernel's backlog) and never answers: a hung service."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock


async def test_an_unreachable_upstream_is_503_with_retry_after_and_a_hung_one_504(
    infrastructure: Infrastructure, services: dict[str, str]
) -> None:
    hung = _listening_socket()
    closed_port = free_port()  # nothing listens there
    broken = {
        **services,
        "kpi-engine": f"http://127.0.0.1:{closed_port}",
        "settlement": f"http://127.0.0.1:{hung.getsockname()[1]}",
    }
    try:
        async with gateway_in_front(infrastructure, broken, upstream_timeout_seconds=1) as gateway:
            health = await tenant(gateway, facilities=("main",))
            ops = await key(gateway, health, "ops")
            unreachable = await gateway.client.get("/v1/kpis", headers=bearer(ops))
            assert unreachable.status_code == 503, unreachable.text
            assert unreachable.headers["retry-after"] == "2"
            assert unreachable.headers["content-type"].startswith("application/problem+json")
            assert unreachable.json()["detail"].startswith("kpi-engine is unavailable")
            slow = await gateway.client.get("/v1/contracts", headers=bearer(ops))
            assert slow.status_code == 504
            assert "retry-after" not in slow.headers
    finally:
        hung.close()


async def test_a_stopped_service_is_503_with_retry_after(
    infrastructure: Infrastructure, services: dict[str, str]
) -> None:
    """A service that answered a moment ago and is stopped now (a restart): the client is told to retry
    in 2 s, as problem+json naming the service — not a 502 or a 500."""
    service = FastAPI()

    @service.get("/v1/kpis")
    async def kpis() -> dict[str, list[str]]:
        return {"kpis": []}

    running = contextlib.AsyncExitStack()
    service_url = await running.enter_async_context(serving(service))
    try:
        async with gateway_in_front(infrastructure, {**services, "kpi-engine": service_url}) as gw:
            health = await tenant(gw, facilities=("main",))
            ops = await key(gw, health, "ops")
            served = await gw.client.get("/v1/kpis", headers=bearer(ops))
            assert (served.status_code, served.json()) == (200, {"kpis": []})
            before = metric_value(exposed_metrics(), _UNREACHABLE_ENGINE)
            await running.aclose()  # the service stops; the gateway keeps its pooled connection
            for _ in range(2):  # the connection it held, then a new one refused
                stopped = await gw.client.get("/v1/kpis", headers=bearer(ops))
                assert stopped.status_code == 503, stopped.text
                assert stopped.headers["retry-after"] == "2"
                assert stopped.headers["content-type"] == "application/problem+json"
                problem = stopped.json()
                assert (problem["status"], problem["title"]) == (503, "Service unavailable")
                assert problem["detail"].startswith("kpi-engine is unavailable")
            assert metric_value(exposed_metrics(), _UNREACHABLE_ENGINE) == before + 2
    finally:
        await running.aclose()


_UNREACHABLE_ENGINE = 'vr_gateway_upstream_errors_total{kind="unreachable",upstream="kpi-engine"}'


@contextlib.asynccontextmanager
async def hanging_up() -> AsyncIterator[str]:
    """A service that reads each request whole, then closes the connection without a word: it may have
    acted on the request, the gateway cannot tell."""

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"(?i)content-length: *(\d+)", head)
        await reader.readexactly(int(length.group(1)) if length else 0)
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


async def test_a_service_that_hangs_up_is_503_only_for_what_may_be_sent_again(
    infrastructure: Infrastructure, services: dict[str, str]
) -> None:
    """A GET, a POST that only reads, and events are sent again safely: 503 with `Retry-After`. A
    contract written may have been stored: 502, check before retrying — an `Idempotency-Key` included,
    since the gateway keeps no 5xx answer (docs/api.md)."""
    async with hanging_up() as service_url:
        broken = {**services, "settlement": service_url, "kpi-engine": service_url, "ingest": service_url}
        async with gateway_in_front(infrastructure, broken) as gateway:
            health = await tenant(gateway, facilities=("main",))
            admin, pipeline = (
                await key(gateway, health, "tenant_admin"),
                await key(gateway, health, "pipeline"),
            )
            for method, path, body, who in [
                ("GET", "/v1/contracts", None, admin),
                ("POST", "/v1/kpis/readings", {"facility": ["main"], "readings": []}, admin),
                ("POST", "/v1/events", [], pipeline),
            ]:
                retry = await gateway.client.request(method, path, json=body, headers=bearer(who))
                assert retry.status_code == 503, (path, retry.text)
                assert retry.headers["retry-after"] == "2"
            for extra in ({}, {"Idempotency-Key": str(uuid.uuid4())}):
                written = await gateway.client.post(
                    "/v1/contracts", json={"id": "c1"}, headers={**bearer(admin), **extra}
                )
                assert written.status_code == 502, written.text
                assert "retry-after" not in written.headers
                assert written.headers["content-type"] == "application/problem+json"
                detail = written.json()["detail"]
                assert re.fullmatch(
                    r"settlement broke off \((RemoteProtocolError|ReadError)\); it may have "
                    r"acted on the request — check before retrying",
                    detail,
                ), detail


async def test_one_openapi_covers_every_public_route(stack: GatewayStack) -> None:
    from gateway.domain.routes import ROUTES

    document = (await stack.client.get("/openapi.json")).json()
    documented = {(m, p) for p, ops in document["paths"].items() for m in ops}
    expected = {(r.method.lower(), r.template) for r in ROUTES} | {
        ("post", "/v1/tenants"),
        ("get", "/v1/tenants"),
        ("get", "/v1/tenants/{tenant_id}"),
        ("post", "/v1/api-keys"),
        ("get", "/v1/api-keys"),
        ("delete", "/v1/api-keys/{key_id}"),
    }
    assert documented == expected
    assert document["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    # Named and grouped operations, so a generated client reads `finalizeSettlement`, not a path.
    operations = [op for ops in document["paths"].values() for op in ops.values()]
    ids = [op["operationId"] for op in operations]
    assert len(ids) == len(set(ids)) == len(expected)
    assert all(re.fullmatch(r"[a-z][A-Za-z]+", i) for i in ids), ids
    assert {"createApiKey", "finalizeSettlement", "getKpiValues", "submitEvents"} <= set(ids)
    assert {t for op in operations for t in op["tags"]} == {t["name"] for t in document["tags"]}
    docs = await stack.client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


async def test_services_get_the_request_id_and_identity_never_the_api_key(
    infrastructure: Infrastructure, services: dict[str, str]
) -> None:
    echo = FastAPI()

    @echo.get("/v1/kpis")
    async def headers(request: Request) -> dict[str, Any]:
        return {"headers": dict(request.headers)}

    async with (
        serving(echo) as echo_url,
        gateway_in_front(infrastructure, {**services, "kpi-engine": echo_url}) as gw,
    ):
        health = await tenant(gw, facilities=("main", "west"))
        ops = await key(gw, health, "ops")
        answer = await gw.client.get("/v1/kpis", headers={**bearer(ops), "X-Request-ID": "trace-777"})
        assert answer.status_code == 200, answer.text
        seen = answer.json()["headers"]
    assert seen["x-request-id"] == "trace-777"
    assert "authorization" not in seen
    verifier = gateway_verifier("kpi-engine", GATEWAY_PUBLIC_KEY, max_ttl_seconds=300)
    identity = verifier.verify(seen["x-vr-identity"])
    assert (identity.tenant, identity.role, identity.facilities) == (
        health,
        "ops",
        frozenset({"main", "west"}),
    )
    assert identity.timezone == "America/New_York"


async def test_answers_come_back_as_the_service_sent_them(
    infrastructure: Infrastructure, services: dict[str, str]
) -> None:
    """A small answer of known length (relayed in one piece) keeps its encoding and headers; a long
    answer of unknown length is streamed through whole."""
    compressed = gzip.compress(b'{"kpis": []}')
    long_lines = [f"line {n:06d} {'x' * 90}\n".encode() for n in range(20_000)]  # about 2 MB
    service = FastAPI()

    @service.get("/v1/kpis")
    async def small() -> Response:
        return Response(
            compressed,
            status_code=203,
            headers={"Content-Encoding": "gzip", "Cache-Control": "no-store"},
            media_type="application/json",
        )

    @service.get("/v1/kpis/export/values")
    async def long() -> StreamingResponse:
        async def lines() -> AsyncIterator[bytes]:
            for line in long_lines:
                yield line

        return StreamingResponse(lines(), media_type="text/plain")

    async with (
        serving(service) as service_url,
        gateway_in_front(infrastructure, {**services, "kpi-engine": service_url}) as gw,
    ):
        health = await tenant(gw, facilities=("main",))
        ops = await key(gw, health, "ops")
        answer = await gw.client.get("/v1/kpis", headers=bearer(ops))
        assert (answer.status_code, answer.json()) == (203, {"kpis": []})
        assert (answer.headers["content-encoding"], answer.headers["cache-control"]) == ("gzip", "no-store")
        assert int(answer.headers["content-length"]) == len(compressed)
        streamed = await gw.client.get("/v1/kpis/export/values", headers=bearer(ops))
        assert streamed.status_code == 200
        assert "content-length" not in streamed.headers
        assert streamed.content == b"".join(long_lines)


async def test_a_platform_admin_acts_for_the_tenant_it_names(stack: GatewayStack) -> None:
    """docs/security.md: a platform admin may act for any tenant — `?tenant=` on tenant-scoped reads
    gives it that tenant's facilities; an unknown tenant is 404 problem+json naming it; no tenant, no
    tenant's data."""
    health = await tenant(stack, facilities=("main", "west"))
    pipeline = await key(stack, health, "pipeline")
    event = {
        "id": "pa-1",
        "source": "billing",
        "type": "claim.submitted",
        "time": "2026-11-02T09:00:00-05:00",
        "facility": "west",
        "data": {"claim_ref": "C1", "amount": "100.00", "clean": True},
    }
    assert (await stack.client.post("/v1/events", json=[event], headers=bearer(pipeline))).status_code == 202
    params = {"from": "2026-11-01", "to": "2026-12-01", "granularity": "month", "tenant": health}

    async def as_admin() -> httpx.Response:
        return await stack.client.get(
            "/v1/kpis/clean_claim_rate/values", params=params, headers=stack.admin()
        )

    answer = await eventually(
        as_admin, lambda r: r.status_code == 200 and r.json()["values"][0]["denominator"] == "1"
    )
    assert answer.json()["facilities"] == ["main", "west"]
    unknown = await stack.client.get(
        "/v1/kpis/clean_claim_rate/values",
        params={**params, "tenant": "no-such-tenant"},
        headers=stack.admin(),
    )
    assert unknown.status_code == 404 and unknown.headers["content-type"] == "application/problem+json"
    assert "no-such-tenant" in unknown.json()["detail"]
    looked_up = await stack.client.get(
        "/v1/events/billing/pa-1", params={"tenant": health}, headers=stack.admin()
    )
    assert looked_up.status_code == 200 and looked_up.json()["status"] == "stored"
    without = await stack.client.get("/v1/events/billing/pa-1", headers=stack.admin())
    assert without.status_code == 404
