"""Webhook rules without a network (docs/webhooks.md): addresses, schedule, secrets and signatures —
signatures checked with the `standardwebhooks` package a receiver uses, not with our own code."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from settlement.config import retry_schedule
from settlement.domain.notifications import payload, statement_state
from settlement.domain.webhooks import (
    DEFAULT_RETRY_SCHEDULE,
    endpoint_errors,
    new_secret,
    next_delay,
    parse_networks,
    refused_address,
    signature_header,
)

LOOPBACK = parse_networks("127.0.0.0/8,::1/128")


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.8",
        "172.16.4.4",
        "192.168.1.1",
        "169.254.169.254",  # the cloud metadata service
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "::1",
        "fd00::1",
        "fe80::1",
        "::ffff:10.0.0.1",  # a private IPv4 address written as IPv6
        "224.0.0.1",
    ],
)
def test_private_and_reserved_addresses_are_refused_unless_allowed(address: str) -> None:
    found = [ipaddress.ip_address(address)]
    assert "private or reserved" in (refused_address("https", found, ()) or "")


def test_an_allowed_network_may_be_reached_even_over_plain_http() -> None:
    assert refused_address("http", [ipaddress.ip_address("127.0.0.1")], LOOPBACK) is None
    assert refused_address("http", [ipaddress.ip_address("::1")], LOOPBACK) is None
    # Loopback allowed does not open the rest of the private space.
    assert refused_address("https", [ipaddress.ip_address("10.0.0.1")], LOOPBACK) is not None


def test_public_endpoints_must_be_https_and_every_address_counts() -> None:
    public = ipaddress.ip_address("93.184.216.34")
    assert refused_address("https", [public], ()) is None
    assert "https" in (refused_address("http", [public], ()) or "")
    # A name resolving to a public and a private address is refused: either may be the one used.
    assert refused_address("https", [public, ipaddress.ip_address("10.1.1.1")], ()) is not None
    assert refused_address("https", [], ()) == "the host does not resolve"


def test_endpoint_documents_name_each_field_at_fault() -> None:
    assert endpoint_errors("https://billing.example/hooks", ["statement.finalized"], None) == []
    paths = [e.path for e in endpoint_errors("ftp://x", ["invoice.paid"], "x" * 201)]
    assert paths == ["$.url", "$.events", "$.description"]
    assert [e.path for e in endpoint_errors("https://u:p@billing.example/", [], None)] == [
        "$.url",
        "$.events",
    ]
    assert [e.path for e in endpoint_errors(None, "statement.ready", None)] == ["$.url", "$.events"]


def test_the_default_schedule_retries_for_more_than_a_day_then_stops() -> None:
    assert sum(DEFAULT_RETRY_SCHEDULE) >= 24 * 3600
    delays = [next_delay(n, DEFAULT_RETRY_SCHEDULE) for n in range(1, len(DEFAULT_RETRY_SCHEDULE) + 2)]
    assert delays == [*DEFAULT_RETRY_SCHEDULE, None]
    assert retry_schedule("5, 300,1800") == (5.0, 300.0, 1800.0)
    assert retry_schedule("5,-1") == retry_schedule("soon") == ()


def test_a_signature_verifies_with_the_reference_library_and_during_rotation_with_either_secret() -> None:
    old, new = new_secret(), new_secret()
    assert old.startswith("whsec_") and old != new
    now = datetime.now(UTC)
    body = '{"type":"statement.finalized","timestamp":"2026-04-02T00:00:00+00:00","data":{"total":"1.00"}}'
    headers = {
        "webhook-id": "evt_1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature_header([new, old], "evt_1", now, body),
    }
    assert Webhook(new).verify(body, headers)["data"] == {"total": "1.00"}
    assert Webhook(old).verify(body, headers)["type"] == "statement.finalized"
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):  # the body changed on the way
        Webhook(new).verify(body.replace("1.00", "9.00"), headers)


def test_a_period_is_announced_ready_only_once_it_has_ended_with_its_data() -> None:
    def state(status: str, complete: bool, ended: bool = True) -> str | None:
        return statement_state({"status": status, "data_complete": complete}, ended=ended)

    assert state("draft", True) == state("maturing", True) == "ready"
    assert state("blocked", False) == "blocked"
    assert state("maturing", False) is None and state("final", True) is None
    assert state("open", True, ended=False) is None


def test_a_payload_is_type_timestamp_and_data() -> None:
    at = datetime(2026, 4, 2, 12, 0, tzinfo=UTC)
    assert payload("contract.updated", at, {"version": 2}) == {
        "type": "contract.updated",
        "timestamp": "2026-04-02T12:00:00+00:00",
        "data": {"version": 2},
    }
