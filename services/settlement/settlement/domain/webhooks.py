"""Webhook endpoints and deliveries by the Standard Webhooks specification (docs/webhooks.md).

Pure rules: which URLs an endpoint may have and which addresses it may reach, the retry schedule, the
secrets and the signature header. Signing uses the `standardwebhooks` package, the specification's own
reference library, so what we send is what every receiver's verifier expects.
"""

from __future__ import annotations

import base64
import ipaddress
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import SplitResult, urlsplit

from standardwebhooks.webhooks import Webhook

from settlement.domain.notifications import EventType
from vr_shared.events.validation import FieldError

SECRET_PREFIX = "whsec_"
MAX_URL_LENGTH = 2048
MAX_ENDPOINTS_PER_TENANT = 20
# After the immediate first attempt (Standard Webhooks' suggested schedule): 5 s, 5 min, 30 min, 2 h,
# 5 h, 10 h, 10 h — 27 h 35 min in all, so a receiver that is down for a day still gets every event.
DEFAULT_RETRY_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: str
    tenant: str
    url: str
    events: tuple[str, ...]
    description: str | None
    created_at: datetime
    failing_since: datetime | None
    disabled_at: datetime | None
    disabled_reason: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "events": list(self.events),
            "description": self.description,
            "created_at": self.created_at.isoformat(),
            "failing_since": _iso(self.failing_since),
            "disabled_at": _iso(self.disabled_at),
            "disabled_reason": self.disabled_reason,
        }


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event for one endpoint, with every attempt made so far."""

    id: int
    endpoint_id: str
    event_id: str
    event_type: str
    status: str  # pending, delivered, failed
    attempts: list[dict[str, Any]]
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "endpoint_id": self.endpoint_id,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "status": self.status,
            "attempts": self.attempts,
            "next_attempt_at": _iso(self.next_attempt_at),
            "delivered_at": _iso(self.delivered_at),
            "created_at": self.created_at.isoformat(),
        }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def new_secret() -> str:
    """24 random bytes, base64, with the specification's `whsec_` prefix; shown to its owner once."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def new_endpoint_id() -> str:
    return "we_" + secrets.token_hex(12)


def signature_header(signing_secrets: Sequence[str], message_id: str, timestamp: datetime, body: str) -> str:
    """`webhook-signature`: one `v1,<base64>` per secret, space-separated — during a rotation's overlap
    both the new and the old secret sign, so a receiver holding either verifies."""
    return " ".join(Webhook(secret).sign(message_id, timestamp, body) for secret in signing_secrets)


def next_delay(attempts_made: int, schedule: Sequence[float]) -> float | None:
    """Seconds until the next attempt after `attempts_made` failed ones; None: the schedule is spent."""
    return schedule[attempts_made - 1] if 1 <= attempts_made <= len(schedule) else None


def endpoint_errors(url: Any, events: Any, description: Any) -> list[FieldError]:
    """What is wrong with an endpoint's document, each error naming its field."""
    errors: list[FieldError] = []
    if not isinstance(url, str) or not url:
        errors.append(FieldError("$.url", "required: the https URL events are posted to", "url"))
    else:
        errors.extend(url_errors(url))
    known = sorted(EventType)
    if (
        not isinstance(events, list)
        or not events
        or not all(isinstance(e, str) and e in known for e in events)
    ):
        errors.append(FieldError("$.events", "a non-empty list of: " + ", ".join(known), "events"))
    if description is not None and (not isinstance(description, str) or len(description) > 200):
        errors.append(FieldError("$.description", "at most 200 characters", "description"))
    return errors


def url_errors(url: str) -> list[FieldError]:
    """What is wrong with an endpoint's URL as written (its addresses are checked by the sender)."""
    if len(url) > MAX_URL_LENGTH:
        return [_url_error(f"at most {MAX_URL_LENGTH} characters")]
    if any(c.isspace() or not c.isprintable() for c in url):
        return [_url_error("must not contain spaces or control characters")]
    try:
        parts = urlsplit(url)
    except ValueError:  # an unclosed bracket, or brackets around what is not an IPv6 address
        return [_url_error("brackets enclose an IPv6 address only: https://[2001:db8::1]/hooks")]
    if parts.scheme not in ("https", "http"):
        return [_url_error("must be an absolute https URL")]
    if parts.netloc.count(":") > 1 and "[" not in parts.netloc:
        return [_url_error("an IPv6 address is written in brackets: https://[2001:db8::1]/hooks")]
    if not parts.hostname:
        return [_url_error("must name a host: https://billing.example/hooks")]
    if "@" in parts.netloc:
        return [_url_error("must not carry credentials; the signature authenticates")]
    if "[" in parts.netloc and not isinstance(ip_literal(parts.hostname), ipaddress.IPv6Address):
        return [_url_error("brackets enclose an IPv6 address only: https://[2001:db8::1]/hooks")]
    if (port_error := _port_error(parts)) is not None:
        return [_url_error(port_error)]
    return []


def _url_error(message: str) -> FieldError:
    return FieldError("$.url", message, "url")


def ip_literal(host: str) -> Address | None:
    """The address a host names by itself (an IP literal), or None for a name to look up."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _port_error(parts: SplitResult) -> str | None:
    try:
        port = parts.port
    except ValueError:  # not a number, or over 65535
        port = 0
    return None if port != 0 else "the port must be a number from 1 to 65535"


def refused_address(scheme: str, addresses: Iterable[Address], allowed: Sequence[Network]) -> str | None:
    """Why an endpoint may not be reached at these addresses, or None. Addresses that are not public
    (loopback, private, link-local — the cloud metadata service —, reserved, multicast, and IPv6 forms
    that carry such an IPv4 address) are refused unless the deployment allows their network; plain
    http only to such an allowed network (local development), never across the internet."""
    found = list(addresses)
    if not found:
        return "the host does not resolve"
    for address in found:
        if _allowed(address, allowed):
            continue
        if (reason := _not_public(address)) is not None:
            return f"the host resolves to {address}, {reason}"
        if scheme != "https":
            return "must be https (plain http only to a network the deployment allows)"
    return None


# IPv6 forms that carry an IPv4 address. Two are that IPv4 address, and are judged as it: IPv4-mapped
# (a dual-stack socket connects to the IPv4 address itself) and NAT64's well-known prefix (RFC 6052: a
# DNS64 resolver's name for an IPv4-only host, which the translator reaches — refusing it would leave an
# IPv6-only deployment unable to reach any IPv4-only receiver).
IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
# The others are refused whatever they carry: a receiver has no reason to use them, and what they
# reach is not the address they carry alone (a translator or relay of someone's choosing).
IPV4_CARRIERS_REFUSED = {
    ipaddress.IPv6Network("64:ff9b:1::/48"): "local-use NAT64",  # RFC 8215: the network's own mapping
    ipaddress.IPv6Network("2002::/16"): "6to4",  # RFC 3056, deprecated
    ipaddress.IPv6Network("2001::/32"): "Teredo",  # RFC 4380, deprecated; its IPv4 address is obfuscated
    ipaddress.IPv6Network("::/96"): "IPv4-compatible",  # RFC 4291, deprecated
    # SIIT's IPv4-translated form (RFC 2765, ::ffff:0:a.b.c.d — not IPv4-mapped's ::ffff:a.b.c.d),
    # obsoleted by RFC 6052's prefixes: only a stateless translator somewhere on the path reaches it.
    ipaddress.IPv6Network("::ffff:0:0:0/96"): "IPv4-translated",
}
# Not public although Python's address tables (of the Python we run on) call them global.
IPV6_NOT_PUBLIC = (
    ipaddress.IPv6Network("fec0::/10"),  # site-local (RFC 3879 deprecated it; some networks still route it)
    ipaddress.IPv6Network("3fff::/20"),  # documentation (RFC 9637)
    ipaddress.IPv6Network("5f00::/16"),  # segment routing identifiers (RFC 9602), never a host
)


def embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped or NAT64 (64:ff9b::/96) address is, or None."""
    if isinstance(address, ipaddress.IPv6Address) and (address in IPV4_MAPPED or address in NAT64_WELL_KNOWN):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _allowed(address: Address, allowed: Sequence[Network]) -> bool:
    """In a network the deployment allows: the address, or the IPv4 address an IPv4-mapped one is.
    Not NAT64's: the well-known prefix never carries a non-public IPv4 address (RFC 6052, 3.1)."""
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return any(
        candidate in network
        for candidate in (address, mapped)
        if candidate is not None
        for network in allowed
    )


def _not_public(address: Address) -> str | None:
    if (inner := embedded_ipv4(address)) is not None:
        return None if _not_public(inner) is None else f"which is {inner}, a private or reserved address"
    if not address.is_global or address.is_multicast or any(address in n for n in IPV6_NOT_PUBLIC):
        return "a private or reserved address"
    for network, form in IPV4_CARRIERS_REFUSED.items():
        if address in network:
            return f"an IPv6 form that carries an IPv4 address ({form}), reached only through a relay"
    return None


def parse_networks(text: str) -> tuple[Network, ...]:
    """`VR_WEBHOOK_ALLOWED_NETWORKS`: comma-separated CIDR blocks (e.g. `127.0.0.0/8,::1/128`)."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip())
