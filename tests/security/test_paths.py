"""Dot segments are refused at the gateway instead of authorised as one route and forwarded as another;
a NUL (or any control character) in a path is a 400, not a database error (docs/security.md)."""

from __future__ import annotations

import pytest

from tests.integration.gateway.conftest import GatewayStack
from tests.integration.gateway.test_gateway import bearer, key, tenant
from tests.support.identity import token
from tests.support.raw_http import raw_request

BAD_PATHS = [
    "/v1/events/../kpis",
    "/v1/events/%2e%2e/kpis",
    "/v1/events/%2E%2E/kpis",
    "/v1/events/./x/../../kpis",
    "/v1/contracts/c%00x",
    "/v1/contracts/%0d%0aSet-Cookie:x",
    "/v1/kpis/cost_total%00/values",
]


@pytest.mark.parametrize("path", BAD_PATHS)
async def test_the_gateway_refuses_dot_segments_and_control_characters(
    stack: GatewayStack, path: str
) -> None:
    health = await tenant(stack, facilities=("main",))
    for headers in ({}, bearer(await key(stack, health, "pipeline")), stack.admin()):
        answer = await raw_request(stack.url, "GET", path, headers)
        assert answer.status == 400, (path, answer.head)
        assert b"bad-path" in answer.body


@pytest.mark.parametrize(
    "target",
    [
        "/v1/api-keys?tenant_id=a%00b",
        "/v1/kpis/cost_total/values?from=2026-01-01%0A&to=2026-02-01",
        "/v1/feeds?facility=%1b",
    ],
)
async def test_a_control_character_in_a_query_parameter_is_400(stack: GatewayStack, target: str) -> None:
    answer = await raw_request(stack.url, "GET", target, stack.admin())
    assert answer.status == 400 and b"bad-query" in answer.body, answer.head


@pytest.mark.parametrize(
    ("service", "path"),
    [
        ("settlement", "/v1/contracts/c%00x"),
        ("settlement", "/v1/contracts/c%00x/settlements/2026-Q1"),
        ("kpi-engine", "/v1/events/src%00/e1"),
        ("kpi-engine", "/v1/kpis/x/../../v1/kpis"),
    ],
)
async def test_each_service_refuses_them_too(services: dict[str, str], service: str, path: str) -> None:
    answer = await raw_request(services[service], "GET", path, {"X-VR-Identity": token(role="tenant_admin")})
    assert answer.status == 400, answer.head
