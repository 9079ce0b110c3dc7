"""Each service accepts only gateway-signed identity tokens: called directly without one, with an
expired one or with a forged one, it refuses (SPEC §7)."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.support.identity import token

CALLS = {
    "ingest": ("POST", "/v1/events", "pipeline"),
    "kpi-engine": ("GET", "/v1/kpis/clean_claim_rate/values?from=2026-01-01&to=2026-02-01", "ops"),
    "settlement": ("GET", "/v1/contracts", "ops"),
}
TOKENS = {
    "none": lambda role: None,
    "expired": lambda role: token(role=role, now=time.time() - 3600),
    "forged": lambda role: token(role=role, secret="not-the-gateway-secret-0123456789abcdefghij"),
}


@pytest.mark.parametrize("service", sorted(CALLS))
@pytest.mark.parametrize("kind", sorted(TOKENS))
async def test_direct_calls_without_a_valid_gateway_token_are_refused(
    services: dict[str, str], service: str, kind: str
) -> None:
    method, path, role = CALLS[service]
    signed = TOKENS[kind](role)
    headers = {"X-VR-Identity": signed} if signed else {}
    async with httpx.AsyncClient(base_url=services[service]) as client:
        answer = await client.request(method, path, headers=headers, json=[] if method == "POST" else None)
    assert answer.status_code == 401, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    # The same call with a valid token goes through: the refusal was the token's.
    async with httpx.AsyncClient(base_url=services[service]) as client:
        valid = await client.request(
            method, path, headers={"X-VR-Identity": token(role=role)}, json=[] if method == "POST" else None
        )
    assert valid.status_code != 401
