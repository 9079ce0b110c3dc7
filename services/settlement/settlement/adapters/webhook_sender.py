"""Sends one delivery: resolves the endpoint's host, refuses private addresses the deployment does not
allow (checked again at every attempt, so a name that later points inside the network is caught), signs
by Standard Webhooks and posts with a timeout, following no redirect (docs/webhooks.md).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from settlement.adapters.webhooks import DueDelivery
from settlement.domain.webhooks import Address, Network, refused_address, signature_header

USER_AGENT = "ValueRealization-Webhooks/1"


@dataclass(frozen=True, slots=True)
class Attempt:
    ok: bool
    status_code: int | None
    error: str | None
    seconds: float

    def as_json(self, at: datetime) -> dict[str, Any]:
        return {
            "at": at.isoformat(),
            "status_code": self.status_code,
            "error": self.error,
            "duration_ms": round(self.seconds * 1000),
        }


class AddressCheck:
    """Which addresses a URL's host resolves to, and whether the deployment lets us reach them."""

    def __init__(self, allowed: Sequence[Network]) -> None:
        self._allowed = tuple(allowed)

    async def refusal(self, url: str) -> str | None:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
        return refused_address(parts.scheme, await _resolve(host, port), self._allowed)


async def _resolve(host: str, port: int) -> list[Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return sorted({ipaddress.ip_address(info[4][0]) for info in found}, key=str)


class WebhookSender:
    def __init__(self, http: httpx.AsyncClient, addresses: AddressCheck) -> None:
        self._http, self._addresses = http, addresses

    async def send(self, due: DueDelivery) -> Attempt:
        started = time.perf_counter()
        if (refusal := await self._addresses.refusal(due.url)) is not None:
            return Attempt(False, None, f"refused: {refusal}", time.perf_counter() - started)
        body = orjson.dumps(due.body).decode()
        now = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": due.event_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature_header(due.signing_secrets, due.event_id, now, body),
        }
        try:
            # The answer's body is not read: a receiver acknowledges with its status alone.
            async with self._http.stream("POST", due.url, content=body, headers=headers) as answer:
                status = answer.status_code
        except httpx.TimeoutException:
            return Attempt(False, None, "timed out", time.perf_counter() - started)
        except httpx.HTTPError as exc:
            return Attempt(False, None, f"{type(exc).__name__}: {exc}"[:300], time.perf_counter() - started)
        ok = 200 <= status < 300
        error = None if ok else f"answered {status}"
        return Attempt(ok, status, error, time.perf_counter() - started)
