"""One webhook attempt over real sockets (docs/webhooks.md): it connects only to an address its check saw
— a name that answers differently the next time it is looked up (DNS rebinding) never reaches another —
keeps the endpoint's name in the Host header and TLS (SNI and the certificate check), and ends at its
deadline however slowly the receiver answers. Receivers verify with the `standardwebhooks` package, as
a billing system does.

127.0.0.2 plays a checked, allowed address and 127.0.0.1 one the deployment refuses: both are this
machine's loopback, so the test sees which one a request reached.
"""

from __future__ import annotations

import ipaddress
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson
import pytest
from standardwebhooks.webhooks import Webhook

from settlement.adapters.name_lookups import NameLookups
from settlement.adapters.webhook_sender import AddressCheck, WebhookSender
from settlement.adapters.webhooks import DueDelivery
from settlement.domain.webhooks import Address, Network, new_secret, parse_networks
from tests.integration.settlement.webhook_receivers import Receiver, receiving, tls_for
from tests.support.waiting import eventually

NAME = "hooks.rebind.test"
CHECKED, REFUSED = "127.0.0.2", "127.0.0.1"
ONLY_CHECKED = parse_networks(f"{CHECKED}/32")


def _due(url: str, secret: str) -> DueDelivery:
    return DueDelivery(
        id=1,
        endpoint_id="we_test",
        tenant="t-sender",
        url=url,
        signing_secrets=(secret,),
        event_id=f"evt_{uuid.uuid4().hex}",
        body={"type": "contract.updated", "timestamp": "2026-04-02T00:00:00+00:00", "data": {"version": 2}},
        failed_attempts=0,
    )


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """Made as settlement makes its webhook client (bootstrap.py)."""
    async with httpx.AsyncClient(
        timeout=5, follow_redirects=False, trust_env=False, limits=httpx.Limits(max_keepalive_connections=0)
    ) as client:
        yield client


def _looking_up(allowed: tuple[Network, ...]) -> AddressCheck:
    """The check as settlement makes it: the system resolver on look-up threads of its own."""
    return AddressCheck(allowed, NameLookups(threads=2), lookup_timeout_s=5)


def _rebinding(monkeypatch: pytest.MonkeyPatch, answers: list[str]) -> list[str]:
    """The system resolver, answering NAME with the next of `answers` on each lookup (the last one
    from then on), as an attacker's DNS server with a zero TTL does; the lookups are returned."""
    real = socket.getaddrinfo
    looked_up: list[str] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in (NAME, NAME.encode()):
            return real(host, port, *args, **kwargs)
        address = answers[min(len(looked_up), len(answers) - 1)]
        looked_up.append(address)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port)))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return looked_up


def _resolving_to(*addresses: str) -> Callable[[str, int, str], Any]:
    async def resolve(host: str, port: int, tenant: str) -> list[Address]:
        assert host == NAME
        return [ipaddress.ip_address(a) for a in addresses]

    return resolve


def _verified(secret: str, request: Any) -> dict[str, Any]:
    verified: dict[str, Any] = Webhook(secret).verify(request.body, request.headers)
    return verified


async def test_a_name_rebound_to_a_refused_address_is_still_reached_only_where_it_was_checked(
    http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with receiving(Receiver(CHECKED)) as checked, receiving(Receiver(REFUSED, checked.port)) as refused:
        looked_up = _rebinding(monkeypatch, [CHECKED, REFUSED])
        secret, url = new_secret(), f"http://{NAME}:{checked.port}/hooks"
        sender = WebhookSender(http, _looking_up(ONLY_CHECKED), deadline_s=5)

        attempt = await sender.send(due := _due(url, secret))

        assert (attempt.ok, attempt.status_code) == (True, 204), attempt
        assert refused.requests == []  # the signed POST never reached the refused address
        (request,) = checked.requests
        assert request.headers["host"] == f"{NAME}:{checked.port}"  # the name, as the owner wrote it
        assert _verified(secret, request) == due.body
        assert request.headers["webhook-id"] == due.event_id
        # The name was looked up once; looked up again it now answers the refused address, which
        # the check refuses.
        assert looked_up == [CHECKED]
        assert "127.0.0.1, a private or reserved address" in (
            await _looking_up(ONLY_CHECKED).refusal(url, "t-sender") or ""
        )


async def test_a_name_answering_a_refused_address_first_is_refused_without_a_connection(
    http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with receiving(Receiver(CHECKED)) as checked, receiving(Receiver(REFUSED, checked.port)) as refused:
        _rebinding(monkeypatch, [REFUSED, CHECKED])
        sender = WebhookSender(http, _looking_up(ONLY_CHECKED), deadline_s=5)

        attempt = await sender.send(_due(f"http://{NAME}:{checked.port}/hooks", new_secret()))

    assert not attempt.ok and attempt.status_code is None
    assert attempt.error == "refused: the host resolves to 127.0.0.1, a private or reserved address"
    assert refused.requests == checked.requests == []


async def test_over_tls_the_checked_address_is_reached_under_the_endpoints_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The certificate names the host only: the handshake succeeds because SNI and the certificate
    check use the name while the connection goes to the address."""
    tls = tls_for(NAME)
    async with (
        receiving(Receiver(CHECKED, tls=tls.server)) as receiver,
        httpx.AsyncClient(verify=tls.client, trust_env=False, timeout=5) as http,
    ):
        secret, url = new_secret(), f"https://{NAME}:{receiver.port}/hooks/vr?x=1"
        sender = WebhookSender(
            http, AddressCheck(ONLY_CHECKED, _resolving_to(CHECKED), lookup_timeout_s=5), deadline_s=5
        )

        attempt = await sender.send(due := _due(url, secret))

    assert (attempt.ok, attempt.status_code) == (True, 204), attempt
    assert receiver.server_names == [NAME]
    (request,) = receiver.requests
    assert request.headers["host"] == f"{NAME}:{receiver.port}"
    assert _verified(secret, request) == due.body


async def test_a_checked_address_that_refuses_the_connection_gives_way_to_the_next_checked_one(
    http: httpx.AsyncClient,
) -> None:
    nothing_listens = "127.0.0.3"
    async with receiving(Receiver(CHECKED)) as receiver:
        check = AddressCheck(
            parse_networks("127.0.0.2/31"), _resolving_to(nothing_listens, CHECKED), lookup_timeout_s=5
        )
        sender = WebhookSender(http, check, deadline_s=5)

        attempt = await sender.send(_due(f"http://{NAME}:{receiver.port}/hooks", new_secret()))

    assert (attempt.ok, attempt.status_code) == (True, 204), attempt
    assert len(receiver.requests) == 1


async def test_a_receiver_trickling_its_answer_is_given_up_at_the_deadline(http: httpx.AsyncClient) -> None:
    """The answer would take 30 s, one byte per 0.2 s: no read waits the client's 5 s, so only the
    attempt's own deadline (0.5 s) ends it."""
    async with receiving(Receiver(REFUSED, trickle=True)) as slow:
        sender = WebhookSender(http, _looking_up(parse_networks("127.0.0.0/8")), deadline_s=0.5)

        attempt = await sender.send(_due(f"http://{REFUSED}:{slow.port}/hooks", new_secret()))

        assert not attempt.ok and attempt.status_code is None
        assert attempt.error == "timed out (the attempt's deadline is 0.5 s)"
        assert attempt.seconds < 10  # the deadline, not the receiver's 30 s
        assert len(slow.requests) == 1 and orjson.loads(slow.requests[0].body)["data"] == {"version": 2}

        async def still_open() -> int:
            return slow.open_connections

        await eventually(still_open, lambda n: n == 0, timeout_s=10)  # the sender hung up
