"""Every body is bounded before anything reads it — authentication included — on every service and
route: 413 as soon as the limit is passed, whatever the client keeps sending, memory flat
(docs/security.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.processes import service_process, settings_environment
from tests.integration.gateway.conftest import GatewayStack, drop_schemas, gateway_settings
from tests.integration.gateway.test_gateway import bearer, key, tenant
from tests.support.identity import token
from tests.support.infrastructure import Infrastructure
from tests.support.raw_http import chunked_upload, raw_request

MIB = 1024 * 1024
# The socket buffers on both sides hold a few MiB the server never read; past that a client that keeps
# sending is blocked. "Refused at the limit" is measured as body bytes written before the answer.
SOCKET_SLACK = 16 * MIB


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def test_a_400_mb_chunked_body_without_a_key_is_413_and_the_gateway_stays_flat(
    infrastructure: Infrastructure, services: dict[str, str], tmp_path: Path
) -> None:
    """The finding: `POST /v1/api-keys`, chunked, 400 MB, no key — the gateway grew 105 → 512 MB and
    never answered. Now 413 once 5 MiB have arrived."""
    settings = gateway_settings(infrastructure, services)
    with service_process(
        "gateway", settings_environment(settings), log_path=tmp_path / "gateway.log"
    ) as gateway:
        assert gateway.pid is not None
        warm = await raw_request(gateway, "GET", "/healthz")
        assert warm.status == 200
        before = _rss_bytes(gateway.pid)
        answer = await chunked_upload(gateway, "/v1/api-keys", 400 * MIB)
        after = _rss_bytes(gateway.pid)
    await drop_schemas(infrastructure, settings.db_schema)
    print(
        f"\n400 MB chunked upload: {answer.status} after {answer.seconds:.3f} s, "
        f"{answer.sent_bytes / MIB:.1f} MiB sent, gateway RSS {before / MIB:.0f} → {after / MIB:.0f} MiB"
    )
    assert answer.status == 413, answer.head
    assert b"payload-too-large" in answer.body
    assert answer.sent_bytes < settings.max_body_bytes + SOCKET_SLACK
    assert after - before < 32 * MIB


# Every route that takes a body, on each service (directly, with a valid identity) and at the gateway.
SERVICE_ROUTES = [
    ("ingest", "POST", "/v1/events"),
    ("kpi-engine", "POST", "/v1/kpis/readings"),
    ("settlement", "POST", "/v1/contracts"),
    ("settlement", "PUT", "/v1/contracts/c-1"),
    ("settlement", "PUT", "/v1/contracts/c-1/periods/2026-Q1/inputs"),
    ("settlement", "POST", "/v1/contracts:simulate"),
]
# Routes that take no body: they answer without reading one, and never buffer what is sent.
BODYLESS_ROUTES = [
    ("settlement", "POST", "/v1/contracts/c-1/settlements/2026-Q1/finalize"),
    ("settlement", "POST", "/v1/contracts/c-1/settlements/2026-Q1/reconcile"),
]
GATEWAY_ROUTES = [
    "/v1/tenants",
    "/v1/api-keys",
    "/v1/events",
    "/v1/kpis/readings",
    "/v1/contracts",
    "/v1/contracts:simulate",
]


@pytest.mark.parametrize(
    ("service", "method", "path"), [*SERVICE_ROUTES, *BODYLESS_ROUTES], ids=lambda part: str(part)
)
async def test_each_service_bounds_every_body_before_reading_it(
    services: dict[str, str], service: str, method: str, path: str
) -> None:
    limit = 5 * MIB if service == "ingest" else MIB
    reads_body = (service, method, path) in SERVICE_ROUTES
    for identity in (None, token(role="tenant_admin" if service == "settlement" else "pipeline")):
        headers = {"X-VR-Identity": identity} if identity else {}
        # Without an identity a route that reads its body itself (ingest) may refuse it (401) before
        # reading it; a route without a body answers as it would (404 here). Either way the answer
        # comes before the limit is passed.
        refusals = {413} if identity and reads_body else {401, 404, 413}
        streamed = await chunked_upload(services[service], path, 64 * MIB, headers, method=method)
        assert streamed.status in refusals, (identity is not None, streamed.head, streamed.body[:200])
        assert streamed.sent_bytes < limit + SOCKET_SLACK
        declared = await raw_request(
            services[service], method, path, {**headers, "Content-Length": str(limit + 1)}
        )
        assert declared.status == 413, declared.head


@pytest.mark.parametrize("path", GATEWAY_ROUTES)
async def test_the_gateway_bounds_every_body_before_authentication(stack: GatewayStack, path: str) -> None:
    """Its own routes parse their body before anything else (FastAPI), the forwarded ones
    authenticate first: either way nothing past the limit is read, and a caller who may send the body
    meets 413."""
    limit = stack.settings.max_body_bytes
    allowed = stack.admin()
    if path == "/v1/events":  # only pipelines send events
        allowed = bearer(await key(stack, await tenant(stack, facilities=("main",)), "pipeline"))
    for headers, refusals in (
        ({}, {401, 413}),
        ({"Authorization": "Bearer vrk_not-a-key"}, {401, 413}),
        (allowed, {413}),
    ):
        streamed = await chunked_upload(stack.url, path, 64 * MIB, headers)
        assert streamed.status in refusals, (headers, streamed.head)
        assert streamed.sent_bytes < limit + SOCKET_SLACK
