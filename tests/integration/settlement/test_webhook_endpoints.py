"""Creating a webhook endpoint through settlement's API (docs/webhooks.md, "Endpoints"): a URL that is
malformed, whose host is not one the deployment lets deliveries reach, or whose name is not resolved
within the look-up timeout, is answered 422 problem+json naming `$.url` — never a 500, never a request
waiting on a name server."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from settlement.entrypoints.app import create_app
from tests.integration.settlement.conftest import as_party, settlement_settings
from tests.support.infrastructure import Infrastructure
from vr_shared.db import create_engine

BILLING = as_party(f"hooks-{uuid.uuid4().hex[:8]}", "billing")
NOTHING_LISTENS = "http://127.0.0.1:9"  # settlement reads no KPI in these tests
LOOKUP_TIMEOUT_S = 1  # VR_WEBHOOK_TIMEOUT_SECONDS: an attempt's deadline, and the creation's look-up's


@pytest.fixture(scope="module")
async def settlement(infrastructure: Infrastructure) -> AsyncIterator[httpx.AsyncClient]:
    """Settlement alone (no KPI engine: creating an endpoint reads none)."""
    settings = settlement_settings(
        infrastructure,
        NOTHING_LISTENS,
        f"kpi-updates-hooks-{uuid.uuid4().hex[:8]}",
        webhook_timeout_seconds=LOOKUP_TIMEOUT_S,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://settlement") as client:
            yield client
    admin = create_engine(infrastructure.database_url)
    async with admin.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA IF EXISTS "{settings.db_schema}" CASCADE'))
    await admin.dispose()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://billing.example:99999/hooks", "the port must be a number from 1 to 65535"),
        ("https://billing.example:0/hooks", "the port must be a number from 1 to 65535"),
        ("https:///hooks", "must name a host: https://billing.example/hooks"),
        ("https://vr:pw@billing.example/hooks", "must not carry credentials; the signature authenticates"),
        ("ftp://billing.example/hooks", "must be an absolute https URL"),
        ("https://2001:db8::1/hooks", "an IPv6 address is written in brackets: https://[2001:db8::1]/hooks"),
        ("https://[2001:db8::1/hooks", "brackets enclose an IPv6 address only: https://[2001:db8::1]/hooks"),
        (
            "https://[64:ff9b::a9fe:a9fe]/hooks",  # the cloud metadata service through NAT64
            "the host resolves to 64:ff9b::a9fe:a9fe, which is 169.254.169.254, "
            "a private or reserved address",
        ),
        (
            "https://[2002:7f00:1::1]/hooks",  # 6to4 of 127.0.0.1
            "the host resolves to 2002:7f00:1::1, an IPv6 form that carries an IPv4 address "
            "(6to4), reached only through a relay",
        ),
        (
            "https://[::ffff:0:a9fe:a9fe]/hooks",  # IPv4-translated (RFC 2765) 169.254.169.254
            "the host resolves to ::ffff:0:a9fe:a9fe, an IPv6 form that carries an IPv4 address "
            "(IPv4-translated), reached only through a relay",
        ),
        ("https://[fec0::1]/hooks", "the host resolves to fec0::1, a private or reserved address"),
    ],
)
async def test_an_endpoint_url_that_cannot_be_delivered_to_is_422_naming_the_url(
    settlement: httpx.AsyncClient, url: str, message: str
) -> None:
    answer = await settlement.post(
        "/v1/webhook-endpoints", json={"url": url, "events": ["contract.updated"]}, headers=BILLING
    )
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["errors"] == [{"path": "$.url", "message": message, "code": "url"}]


SILENT = "hooks.silent-dns.test"


@pytest.fixture
def silent_name_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The system resolver as it behaves when a name's servers never answer: the look-up's thread waits
    (until the test ends); every other name resolves as before."""
    real, answer = socket.getaddrinfo, threading.Event()

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in (SILENT, SILENT.encode()):
            answer.wait()
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield
    answer.set()


async def test_an_endpoint_whose_name_is_not_resolved_in_time_is_422_naming_the_url(
    settlement: httpx.AsyncClient, silent_name_server: None
) -> None:
    """Refused, not accepted unchecked: its owner is there to see it and try again."""
    answer = await settlement.post(
        "/v1/webhook-endpoints",
        json={"url": f"https://{SILENT}/hooks", "events": ["contract.updated"]},
        headers=BILLING,
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"] == [
        {
            "path": "$.url",
            "message": f"the host could not be resolved in time ({LOOKUP_TIMEOUT_S} s): check its DNS",
            "code": "url",
        }
    ]
