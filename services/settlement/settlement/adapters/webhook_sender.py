"""Sends one delivery (docs/webhooks.md): resolves the endpoint's host once (on the name lookups' own
threads, a few per tenant: adapters/name_lookups.py), refuses it unless every address it resolves to
may be reached, and connects only to those checked addresses — the name stays in the Host header and,
over TLS, in the SNI and the certificate check, so a name that answers differently the next time it is
looked up (DNS rebinding) never reaches an address the check did not see. Signs by Standard Webhooks
and posts within one deadline for the whole attempt, following no redirect.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from settlement.adapters.name_lookups import NoLookupThread
from settlement.adapters.webhooks import DueDelivery
from settlement.domain.webhooks import (
    Address,
    Network,
    ip_literal,
    refused_address,
    signature_header,
    url_errors,
)

USER_AGENT = "ValueRealization-Webhooks/1"

# (host, port, tenant) → the addresses, in the order to try them; settlement's is NameLookups, which
# bounds the threads one tenant's look-ups hold.
Resolver = Callable[[str, int, str], Awaitable[list[Address]]]


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


class AddressRefused(Exception):
    """The endpoint may not be reached: the message says why."""


@dataclass(frozen=True, slots=True)
class Destination:
    """An endpoint's URL and the addresses its host resolved to — each one checked, the only ones an
    attempt connects to."""

    url: httpx.URL
    addresses: tuple[Address, ...]

    def request_to(self, address: Address) -> tuple[httpx.URL, dict[str, str], dict[str, Any]]:
        """The URL with the checked address in place of the name, the Host header naming the host as
        written and, over TLS, the name for SNI and the certificate check (httpx's documented
        `sni_hostname` extension): the receiver sees a request to its name, sent where we checked."""
        host = self.url.raw_host.decode("ascii")
        extensions = {"sni_hostname": host} if self.url.scheme == "https" and ip_literal(host) is None else {}
        headers = {"host": self.url.netloc.decode("ascii")}
        return self.url.copy_with(host=str(address)), headers, extensions


class AddressCheck:
    """Which addresses a URL's host resolves to, and whether the deployment lets us reach them."""

    def __init__(self, allowed: Sequence[Network], resolver: Resolver, *, lookup_timeout_s: float) -> None:
        self._allowed, self._resolver, self._lookup_timeout_s = tuple(allowed), resolver, lookup_timeout_s

    async def destination(self, url: str, tenant: str) -> Destination:
        """Resolves the host once (as a look-up of `tenant`'s) and checks every address; raises
        AddressRefused, or NoLookupThread when the look-up may not start now."""
        if malformed := url_errors(url):
            raise AddressRefused(f"not a URL the sender can use: {malformed[0].message}")
        try:
            parsed = httpx.URL(url)  # the parser of the client that connects: one reading of the URL
        except httpx.InvalidURL as exc:
            raise AddressRefused(f"not a URL the sender can use: {exc}") from exc
        host = parsed.raw_host.decode("ascii")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        literal = ip_literal(host)
        addresses = [literal] if literal is not None else await self._resolver(host, port, tenant)
        if (refusal := refused_address(parsed.scheme, addresses, self._allowed)) is not None:
            raise AddressRefused(refusal)
        return Destination(parsed, tuple(addresses))

    async def refusal(self, url: str, tenant: str) -> str | None:
        """Why an endpoint with this URL could not be delivered to, or None: its host looked up within
        the lookup timeout (a name whose servers do not answer in time is refused, not waited for)."""
        try:
            async with asyncio.timeout(self._lookup_timeout_s):
                await self.destination(url, tenant)
        except AddressRefused as refused:
            return str(refused)
        except TimeoutError:
            return f"the host could not be resolved in time ({self._lookup_timeout_s:g} s): check its DNS"
        except NoLookupThread as busy:
            return f"the host could not be looked up now: {busy}; try again in a minute"
        return None


class WebhookSender:
    """One attempt per call, over within `deadline_s` whatever the receiver does: the client's own
    timeouts bound each read, not their sum, so a receiver trickling its answer a byte at a time would
    otherwise hold the attempt (and the worker's slot) as long as it liked."""

    def __init__(self, http: httpx.AsyncClient, addresses: AddressCheck, *, deadline_s: float) -> None:
        self._http, self._addresses, self._deadline_s = http, addresses, deadline_s

    async def send(self, due: DueDelivery) -> Attempt:
        started = time.perf_counter()

        def failed(error: str) -> Attempt:
            return Attempt(False, None, error[:300], time.perf_counter() - started)

        try:
            async with asyncio.timeout(self._deadline_s):
                destination = await self._addresses.destination(due.url, due.tenant)
                status = await self._post(destination, due)
        except AddressRefused as refused:
            return failed(f"refused: {refused}")
        except NoLookupThread as busy:
            return failed(f"not looked up: {busy}")
        except (TimeoutError, httpx.TimeoutException):
            return failed(f"timed out (the attempt's deadline is {self._deadline_s:g} s)")
        except httpx.HTTPError as exc:
            return failed(f"{type(exc).__name__}: {exc}")
        ok = 200 <= status < 300
        return Attempt(ok, status, None if ok else f"answered {status}", time.perf_counter() - started)

    async def _post(self, destination: Destination, due: DueDelivery) -> int:
        """Tries the checked addresses in the resolver's order until one accepts the connection."""
        body = orjson.dumps(due.body).decode()
        now = datetime.now(UTC)
        signed = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": due.event_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature_header(due.signing_secrets, due.event_id, now, body),
        }
        *others, last = destination.addresses
        for address in others:
            try:
                return await self._post_to(destination, address, body, signed)
            except (httpx.ConnectError, httpx.ConnectTimeout):  # nothing was sent: try the next one
                continue
        return await self._post_to(destination, last, body, signed)

    async def _post_to(
        self, destination: Destination, address: Address, body: str, signed: dict[str, str]
    ) -> int:
        url, host, extensions = destination.request_to(address)
        # The answer's body is not read: a receiver acknowledges with its status alone.
        async with self._http.stream(
            "POST", url, content=body, headers={**signed, **host}, extensions=extensions
        ) as answer:
            return answer.status_code
