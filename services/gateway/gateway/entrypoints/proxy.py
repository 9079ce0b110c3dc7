"""Forwarding a public request to its service: streamed both ways, with the caller's signed identity.

Request bodies over 1 MiB (or of unknown length) are streamed to the service as they arrive and cut
off with 413 past the limit; a declared Content-Length over the limit is refused before reading.
Answers are streamed back the same way; small ones of known length go back in one piece.
Upstream failures become problem+json (docs/api.md, "Try again later"):
- no connection (refused, none within the connect timeout, none free in the pool): the request never
  got to the service → 503 with `Retry-After`, the client sends it again;
- the connection broke (a read, write or protocol error, or an answer broken off before its headers
  went out): the service may have acted on the request → 503 with `Retry-After` only when sending it
  again cannot act twice (`repeatable`), else 502 saying to check before retrying;
- the service took the request and did not answer in time (a read or write timeout) → 504;
- any other error of the HTTP client (a malformed request, an unsupported protocol, an undecodable
  answer, redirects) is a bug of ours → 502, logged.
A service's own 503 passes through with its own `Retry-After`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Mapping

import httpx
from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask

from gateway import metrics
from gateway.domain.routes import Route
from vr_shared.identity import HEADER
from vr_shared.logging import request_id
from vr_shared.web import Problem

log = logging.getLogger(__name__)

BUFFERED_BODY_BYTES = 1024 * 1024  # larger bodies, or bodies of unknown length, are streamed
# Seconds a client waits before retrying when a service (or the gateway's database) cannot answer:
# about what a restarted service takes to listen again.
UNAVAILABLE_RETRY_S = 2
FORWARDED_REQUEST_HEADERS = ("content-type", "accept", "idempotency-key")
FORWARDED_RESPONSE_HEADERS = (
    "content-type",
    "content-encoding",
    "content-disposition",
    "retry-after",
    "location",
    "cache-control",
)


class BodyTooLarge(Exception):
    pass


def too_large(limit: int) -> Problem:
    return Problem(413, "Payload too large", f"the body exceeds {limit} bytes", type_="/problems/too-large")


# Methods whose request, sent twice, acts once (RFC 9110 §9.2.2).
REPEATABLE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# POSTs that act once however often they come: a query too long for a URL and a simulation (they store
# nothing), a finalize (a repeat returns the statement the first stored), a reconciliation (a repeat
# finds nothing left to book), an endpoint put back in service.
REPEATABLE_POSTS = frozenset(
    {
        "/v1/kpis/readings",
        "/v1/contracts:simulate",
        "/v1/contracts/{contract_id}/settlements/{period}/finalize",
        "/v1/contracts/{contract_id}/settlements/{period}/reconcile",
        "/v1/webhook-endpoints/{endpoint_id}/enable",
    }
)
# Services whose every write counts once however often it comes: ingest keeps an event once by its
# (tenant, source, id), and HL7v2 and FHIR event ids are made from the message (docs/events.md,
# docs/interop.md). An `Idempotency-Key` does not make a request repeatable here: the gateway keeps no
# 5xx answer, so the retry is processed anew (docs/api.md).
IDEMPOTENT_UPSTREAMS = frozenset({"ingest"})
_NO_CONNECTION = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_BROKEN_CONNECTION = (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)


def repeatable(route: Route) -> bool:
    """Whether the service, sent the same request again, cannot act on it twice."""
    return (
        route.method in REPEATABLE_METHODS
        or route.template in REPEATABLE_POSTS
        or route.upstream in IDEMPOTENT_UPSTREAMS
    )


def unavailable(detail: str) -> Problem:
    return Problem(503, "Service unavailable", detail, headers={"Retry-After": str(UNAVAILABLE_RETRY_S)})


def upstream_failure(upstream: str, exc: httpx.HTTPError, *, retry_safe: bool) -> Problem:
    """The answer to a request the service did not answer (the module's docstring): 503 (retry) when
    it never got the request, or when the connection broke and a retry is safe (`repeatable`); 502 when
    the connection broke and the service may have acted; 504 for a read or write timeout; 502 for any
    other error, a bug, logged."""
    if isinstance(exc, _NO_CONNECTION):
        metrics.UPSTREAM_ERRORS.labels(upstream, "unreachable").inc()
        return unavailable(
            f"{upstream} is unavailable ({type(exc).__name__}); retry in {UNAVAILABLE_RETRY_S} s"
        )
    if isinstance(exc, httpx.ReadTimeout | httpx.WriteTimeout):
        metrics.UPSTREAM_ERRORS.labels(upstream, "timeout").inc()
        return Problem(504, "Upstream timeout", f"{upstream} did not answer in time")
    if isinstance(exc, _BROKEN_CONNECTION):
        metrics.UPSTREAM_ERRORS.labels(upstream, "unreachable").inc()
        if retry_safe:
            return unavailable(
                f"{upstream} is unavailable ({type(exc).__name__}); retry in {UNAVAILABLE_RETRY_S} s"
            )
        return broke_off(f"{upstream} broke off ({type(exc).__name__})")
    metrics.UPSTREAM_ERRORS.labels(upstream, "error").inc()
    log.error("request to a service failed", extra={"upstream": upstream}, exc_info=exc)
    return Problem(502, "Bad gateway", f"the request to {upstream} failed; the error was logged")


def broke_off(what: str) -> Problem:
    """The service may have acted on a request that is not safe to send again: the client looks first."""
    return Problem(502, "Bad gateway", f"{what}; it may have acted on the request — check before retrying")


async def forward(
    request: Request,
    route: Route,
    token: str,
    upstreams: Mapping[str, httpx.AsyncClient],
    max_body: int,
) -> Response:
    """`token`: the caller's identity for this route's service."""
    declared = _known_length(request.headers)
    if declared is not None and declared > max_body:
        raise too_large(max_body)
    headers = {name: request.headers[name] for name in FORWARDED_REQUEST_HEADERS if name in request.headers}
    headers[HEADER] = token
    headers["x-request-id"] = request_id.get() or ""
    client = upstreams[route.upstream]
    body: bytes | AsyncIterator[bytes] | None = None
    if request.method in ("POST", "PUT", "PATCH"):
        if declared is not None and declared <= BUFFERED_BODY_BYTES:
            body = await request.body()  # small and of known size: one write is cheaper than a stream
        else:
            body = _limited(request.stream(), max_body)
    # The path exactly as the caller encoded it: decoding and re-encoding could change what it names.
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    target = raw_path.decode("latin-1") + (f"?{request.url.query}" if request.url.query else "")
    try:
        upstream_request = client.build_request(request.method, target, headers=headers, content=body)
    except httpx.InvalidURL as exc:
        raise Problem(400, "Bad request", "the request URL cannot be forwarded") from exc
    started = time.perf_counter()
    try:
        response = await client.send(upstream_request, stream=True)
    except BodyTooLarge:
        raise too_large(max_body) from None
    except httpx.HTTPError as exc:
        raise upstream_failure(route.upstream, exc, retry_safe=repeatable(route)) from exc
    kept = {name: response.headers[name] for name in FORWARDED_RESPONSE_HEADERS if name in response.headers}
    length = _known_length(response.headers)
    # A small answer of known size (most are) goes back in one piece: a stream would cost a task group
    # and a disconnect listener per request.
    whole_answer = (
        await _read_raw(response, route.upstream, retry_safe=repeatable(route))
        if length is not None and length <= BUFFERED_BODY_BYTES
        else None
    )
    metrics.UPSTREAM_SECONDS.labels(route.upstream).observe(time.perf_counter() - started)
    if whole_answer is not None:
        return Response(whole_answer, status_code=response.status_code, headers=kept)
    return StreamingResponse(
        _relay(response, route.upstream),
        status_code=response.status_code,
        headers=kept,
        background=BackgroundTask(response.aclose),
    )


async def _limited(chunks: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    seen = 0
    async for chunk in chunks:
        seen += len(chunk)
        if seen > limit:
            raise BodyTooLarge
        yield chunk


def _known_length(headers: Mapping[str, str]) -> int | None:
    declared = headers.get("content-length")
    return int(declared) if declared is not None and declared.isdigit() else None


async def _read_raw(response: httpx.Response, upstream: str, *, retry_safe: bool) -> bytes:
    """The body as the service sent it (still encoded, like its Content-Encoding says); headers are
    not sent yet, so a broken answer is still told apart: the service acted, so 503 (retry) only for a
    request safe to retry (`repeatable`), else 502; a timeout 504."""
    try:
        return b"".join([chunk async for chunk in _relay(response, upstream)])
    except _BROKEN_CONNECTION as exc:
        if retry_safe:
            raise unavailable(f"{upstream} broke off its answer; retry in {UNAVAILABLE_RETRY_S} s") from exc
        raise broke_off(f"{upstream} broke off its answer") from exc
    except httpx.HTTPError as exc:
        raise upstream_failure(upstream, exc, retry_safe=retry_safe) from exc
    finally:
        await response.aclose()


async def _relay(response: httpx.Response, upstream: str) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.aiter_raw():
            yield chunk
    except httpx.HTTPError:
        # Headers are gone already: the client sees a cut-off body; the failure is counted.
        metrics.UPSTREAM_ERRORS.labels(upstream, "broken_response").inc()
        raise
