"""Webhook rules without a network (docs/webhooks.md): addresses, schedule, secrets and signatures —
signatures checked with the `standardwebhooks` package a receiver uses, not with our own code."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from settlement.adapters.webhook_sender import AddressCheck
from settlement.config import retry_schedule
from settlement.domain.notifications import payload, statement_state
from settlement.domain.webhooks import (
    DEFAULT_RETRY_SCHEDULE,
    Address,
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
        "fec0::1",  # site-local, deprecated (RFC 3879): Python calls it global
        "fec0:0:0:ffff::5db8:d822",
        "3fff::1",  # documentation (RFC 9637)
        "5f00::1",  # a segment routing identifier (RFC 9602)
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


@pytest.mark.parametrize(
    ("address", "carried"),
    [
        ("64:ff9b::7f00:1", "127.0.0.1"),  # NAT64, well-known prefix: judged as the IPv4 it carries
        ("64:ff9b::a9fe:a9fe", "169.254.169.254"),  # … the cloud metadata service through NAT64
        ("64:ff9b::a00:1", "10.0.0.1"),
        ("::ffff:c0a8:101", "192.168.1.1"),  # IPv4-mapped
    ],
)
def test_ipv6_forms_of_a_private_ipv4_address_are_judged_as_that_address(address: str, carried: str) -> None:
    refusal = refused_address("https", [ipaddress.ip_address(address)], ())
    assert refusal == f"the host resolves to {address}, which is {carried}, a private or reserved address"


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b:1::5db8:d822",  # local-use NAT64 (RFC 8215), even carrying a public address
        "2002:5db8:d822::1",  # 6to4 of 93.184.216.34
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "::5db8:d822",  # IPv4-compatible ::93.184.216.34
        "::7f00:1",  # IPv4-compatible ::127.0.0.1
        "2001:0:5db8:d822::1",  # Teredo
        "::ffff:0:5db8:d822",  # IPv4-translated (RFC 2765) ::ffff:0:93.184.216.34
        "::ffff:0:7f00:1",  # IPv4-translated ::ffff:0:127.0.0.1
        "::ffff:0:a9fe:a9fe",  # IPv4-translated ::ffff:0:169.254.169.254, the cloud metadata service
    ],
)
def test_ipv6_forms_that_carry_an_ipv4_address_through_someone_elses_relay_are_refused(address: str) -> None:
    assert refused_address("https", [ipaddress.ip_address(address)], ()) is not None


@pytest.mark.parametrize(
    ("address", "form"),
    [
        ("::ffff:0:7f00:1", "IPv4-translated"),
        ("::ffff:0:5db8:d822", "IPv4-translated"),
        ("2002:7f00:1::1", "6to4"),
        ("64:ff9b:1::5db8:d822", "local-use NAT64"),
        ("::5db8:d822", "IPv4-compatible"),
    ],
)
def test_a_refused_ipv4_carrier_is_named_by_its_form(address: str, form: str) -> None:
    assert refused_address("https", [ipaddress.ip_address(address)], ()) == (
        f"the host resolves to {address}, an IPv6 form that carries an IPv4 address ({form}), "
        "reached only through a relay"
    )


def test_the_ipv4_translated_form_is_not_taken_for_ipv4_mapped() -> None:
    """::ffff:0:a.b.c.d is SIIT's translated form, ::ffff:a.b.c.d the mapped one: allowing loopback
    allows the mapped loopback only."""
    assert refused_address("http", [ipaddress.ip_address("::ffff:7f00:1")], LOOPBACK) is None
    assert refused_address("http", [ipaddress.ip_address("::ffff:0:7f00:1")], LOOPBACK) is not None


def test_ipv6_forms_of_a_public_ipv4_address_are_reached_like_it() -> None:
    for address in ("64:ff9b::5db8:d822", "::ffff:5db8:d822"):  # 93.184.216.34
        assert refused_address("https", [ipaddress.ip_address(address)], ()) is None
    # Allowing loopback allows it written as IPv4-mapped, never through a NAT64 translator.
    assert refused_address("http", [ipaddress.ip_address("::ffff:127.0.0.1")], LOOPBACK) is None
    assert refused_address("http", [ipaddress.ip_address("64:ff9b::7f00:1")], LOOPBACK) is not None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://billing.example:99999/hooks", "the port must be a number from 1 to 65535"),
        ("https://billing.example:0/hooks", "the port must be a number from 1 to 65535"),
        ("https://billing.example:-1/hooks", "the port must be a number from 1 to 65535"),
        ("https://billing.example:https/hooks", "the port must be a number from 1 to 65535"),
        ("https:///hooks", "must name a host: https://billing.example/hooks"),
        ("https://:443/hooks", "must name a host: https://billing.example/hooks"),
        ("https:billing.example/hooks", "must name a host: https://billing.example/hooks"),
        (
            "https://vr:secret@billing.example/hooks",
            "must not carry credentials; the signature authenticates",
        ),
        ("https://@billing.example/hooks", "must not carry credentials; the signature authenticates"),
        ("ftp://billing.example/hooks", "must be an absolute https URL"),
        ("file:///etc/passwd", "must be an absolute https URL"),
        ("javascript:alert(1)", "must be an absolute https URL"),
        ("//billing.example/hooks", "must be an absolute https URL"),
        ("https://2001:db8::1/hooks", "an IPv6 address is written in brackets: https://[2001:db8::1]/hooks"),
        ("https://[2001:db8::1/hooks", "brackets enclose an IPv6 address only: https://[2001:db8::1]/hooks"),
        (
            "https://[billing.example]/hooks",
            "brackets enclose an IPv6 address only: https://[2001:db8::1]/hooks",
        ),
        ("https://[v1.fe]/hooks", "brackets enclose an IPv6 address only: https://[2001:db8::1]/hooks"),
        ("https://billing example/hooks", "must not contain spaces or control characters"),
        ("https://billing.example/hooks\x00", "must not contain spaces or control characters"),
        ("https://billing.example/" + "a" * 2048, "at most 2048 characters"),
    ],
)
def test_a_malformed_url_is_named_and_said_why(url: str, message: str) -> None:
    errors = endpoint_errors(url, ["contract.updated"], None)
    assert [(e.path, e.message, e.code) for e in errors] == [("$.url", message, "url")]


@pytest.mark.parametrize(
    "url",
    [
        "https://billing.example/hooks",
        "https://billing.example:8443/hooks?tenant=a#x",
        "https://billing.example:65535/hooks",
        "https://[2001:db8::1]:8443/hooks",
        "https://bücher.example/hooks",
        "http://127.0.0.1:9000/hooks",  # its address is the sender's to judge, not the URL's
    ],
)
def test_well_formed_urls_pass_to_the_address_check(url: str) -> None:
    assert endpoint_errors(url, ["contract.updated"], None) == []


async def test_the_address_check_answers_a_refusal_for_any_url_it_is_given_never_an_error() -> None:
    async def resolve(host: str, port: int, tenant: str) -> list[Address]:
        # the IDNA name, the URL's port, and whose look-up it is
        assert (host, port, tenant) == ("xn--bcher-kva.example", 8443, "t-a")
        return [ipaddress.ip_address("93.184.216.34")]

    check = AddressCheck((), resolve, lookup_timeout_s=5)
    assert await check.refusal("https://bücher.example:8443/hooks", "t-a") is None
    assert (await check.refusal("https://billing.example:99999/hooks", "t-a") or "").startswith("not a URL")
    assert (await check.refusal("https://[v1.fe]/hooks", "t-a") or "").startswith("not a URL")
    assert await check.refusal("https://[::ffff:10.0.0.1]/", "t-a") == (
        "the host resolves to ::ffff:a00:1, which is 10.0.0.1, a private or reserved address"
    )


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
