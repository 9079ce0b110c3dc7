"""Each service accepts only gateway-signed identity tokens for itself: called directly without one,
with an expired one, a forged one (another key), one signed with the old shared secret (HS256) or one
for another service, it refuses (docs/security.md)."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest

from tests.support.identity import token
from vr_shared.secrets import new_key_pair

CALLS = {
    "ingest": ("POST", "/v1/events", "pipeline"),
    "kpi-engine": ("GET", "/v1/kpis/clean_claim_rate/values?from=2026-01-01&to=2026-02-01", "ops"),
    "settlement": ("GET", "/v1/contracts", "ops"),
}
OTHER = {"ingest": "settlement", "kpi-engine": "ingest", "settlement": "kpi-engine"}
OLD_SHARED_SECRET = "compose-identity-secret-change-me-0123456789"  # the one compose used to publish


def _old_hs256(role: str, service: str) -> str:
    claims = jwt.decode(token(role=role, service=service), options={"verify_signature": False})
    return jwt.encode(claims, OLD_SHARED_SECRET, algorithm="HS256")


TOKENS = {
    "none": lambda role, service: None,
    "expired": lambda role, service: token(role=role, now=time.time() - 3600, service=service),
    "forged": lambda role, service: token(role=role, private_key=new_key_pair()[0], service=service),
    "old-hs256": _old_hs256,
    "another-service": lambda role, service: token(role=role, service=OTHER[service]),
}


@pytest.mark.parametrize("service", sorted(CALLS))
@pytest.mark.parametrize("kind", sorted(TOKENS))
async def test_direct_calls_without_a_valid_gateway_token_are_refused(
    services: dict[str, str], service: str, kind: str
) -> None:
    method, path, role = CALLS[service]
    signed = TOKENS[kind](role, service)
    headers = {"X-VR-Identity": signed} if signed else {}
    async with httpx.AsyncClient(base_url=services[service]) as client:
        answer = await client.request(method, path, headers=headers, json=[] if method == "POST" else None)
    assert answer.status_code == 401, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    # The same call with a valid token goes through: the refusal was the token's.
    async with httpx.AsyncClient(base_url=services[service]) as client:
        valid = await client.request(
            method,
            path,
            headers={"X-VR-Identity": token(role=role, service=service)},
            json=[] if method == "POST" else None,
        )
    assert valid.status_code != 401
