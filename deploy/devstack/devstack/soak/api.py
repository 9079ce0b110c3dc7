"""The soak's one way to the public API: every answer is tallied by route and status (the answers
invariant reads the tally), and what says "try again" is tried again.

A client may be told to come back — 429 or 503 with `Retry-After`, 409 with `Retry-After` while the
first request of an `Idempotency-Key` is still running — and does, after the time it was given. No
answer at all (the gateway killed, a timeout) is retried after a second and is not an answer. Any
other 5xx is tallied (the answers invariant reports it) and retried too, so that a wrong answer never
also loses an event; a 4xx other than those is returned to the caller.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from devstack.soak.checks import AnswerKind

RETRY_BOUND_SECONDS = 600.0  # a request still refused after this long stops the soak: it is stuck
TRY_AGAIN = (429, 503)
# Ids in paths are replaced so that the tally is per route, not per resource.
_IDS = (
    (re.compile(r"/v1/contracts/[^/]+"), "/v1/contracts/{id}"),
    (re.compile(r"/settlements/[^/]+"), "/settlements/{period}"),
    (re.compile(r"/periods/[^/]+"), "/periods/{period}"),
    (re.compile(r"/v1/kpis/[^/]+"), "/v1/kpis/{kpi}"),
)


def route_of(method: str, path: str) -> str:
    for pattern, name in _IDS:
        path = pattern.sub(name, path)
    return f"{method} {path}"


class Stuck(Exception):
    """A request the API kept refusing for RETRY_BOUND_SECONDS."""


@dataclass
class Answers:
    """Every HTTP answer the soak's clients got (theirs and the HL7 relay's), by kind; and how many
    requests got no answer at all."""

    counts: Counter[AnswerKind] = field(default_factory=Counter)
    unanswered: Counter[str] = field(default_factory=Counter)

    def record(self, response: httpx.Response, *, conflict_expected: bool = False) -> None:
        request = response.request
        self.counts[
            AnswerKind(
                route_of(request.method, request.url.path),
                response.status_code,
                "retry-after" in response.headers,
                conflict_expected,
            )
        ] += 1

    async def hook(self, response: httpx.Response) -> None:
        """An httpx response hook, for clients the soak does not drive itself (the HL7 relay's)."""
        self.record(response)


class Api:
    """Calls through the gateway with one API key, recording each answer."""

    def __init__(self, http: httpx.AsyncClient, key: str, answers: Answers) -> None:
        self._http, self._key, self._answers = http, key, answers

    async def call(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool = False,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """The first answer that is not "try again" (see the module's docstring)."""
        sent = {"Authorization": f"Bearer {self._key}", **(headers or {})}
        deadline = time.monotonic() + RETRY_BOUND_SECONDS
        while True:
            wait, answer = await self._once(method, path, sent, idempotent, kwargs)
            if answer is not None:
                return answer
            if time.monotonic() + wait > deadline:
                raise Stuck(f"{method} {path} still not answered after {RETRY_BOUND_SECONDS:.0f} s")
            await asyncio.sleep(wait)

    async def _once(
        self, method: str, path: str, headers: dict[str, str], idempotent: bool, kwargs: dict[str, Any]
    ) -> tuple[float, httpx.Response | None]:
        try:
            answer = await self._http.request(method, path, headers=headers, **kwargs)
        except httpx.TransportError:
            self._answers.unanswered[route_of(method, path)] += 1
            return 1.0, None
        busy = answer.status_code == 409 and idempotent and "retry-after" in answer.headers
        self._answers.record(answer, conflict_expected=busy)
        if answer.status_code in TRY_AGAIN or busy:
            return retry_after(answer), None
        if answer.status_code >= 500:
            return 1.0, None
        return 0.0, answer


def retry_after(answer: httpx.Response) -> float:
    try:
        return min(30.0, max(0.1, float(answer.headers.get("retry-after", "1"))))
    except ValueError:
        return 1.0


def expect(answer: httpx.Response, *statuses: int) -> dict[str, Any]:
    """The JSON of an answer the soak's own set-up needs to succeed."""
    if answer.status_code not in statuses:
        raise SetUpFailed(
            f"{answer.request.method} {answer.request.url.path}: {answer.status_code} {answer.text[:300]}"
        )
    body = answer.json()
    return body if isinstance(body, dict) else {"items": body}


class SetUpFailed(Exception):
    """The soak could not set itself up (a tenant, a key, a contract): not a finding about the stack."""


Clock = Callable[[], float]
