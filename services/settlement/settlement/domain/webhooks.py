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
from urllib.parse import urlsplit

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
    parts = urlsplit(url)
    if len(url) > MAX_URL_LENGTH:
        return [FieldError("$.url", f"at most {MAX_URL_LENGTH} characters", "url")]
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return [FieldError("$.url", "must be an absolute https URL", "url")]
    if parts.username or parts.password:
        return [FieldError("$.url", "must not carry credentials; the signature authenticates", "url")]
    return []


def refused_address(scheme: str, addresses: Iterable[Address], allowed: Sequence[Network]) -> str | None:
    """Why an endpoint may not be reached at these addresses, or None. Addresses that are not public
    (loopback, private, link-local — the cloud metadata service —, reserved, multicast) are refused
    unless the deployment allows their network; plain http only to such an allowed network (local
    development), never across the internet."""
    found = list(addresses)
    if not found:
        return "the host does not resolve"
    for address in found:
        address = getattr(address, "ipv4_mapped", None) or address
        if any(address in network for network in allowed):
            continue
        if not address.is_global or address.is_multicast:
            return f"the host resolves to {address}, a private or reserved address"
        if scheme != "https":
            return "must be https (plain http only to a network the deployment allows)"
    return None


def parse_networks(text: str) -> tuple[Network, ...]:
    """`VR_WEBHOOK_ALLOWED_NETWORKS`: comma-separated CIDR blocks (e.g. `127.0.0.0/8,::1/128`)."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip())
