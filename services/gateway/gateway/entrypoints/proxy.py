"""Forwarding a public request to its service: streamed both ways, with the caller's signed identity.

Request bodies over 1 MiB (or of unknown length) are streamed to the service as they arrive and cut
off with 413 past the limit; a declared Content-Length over the limit is refused before reading.
Answers are streamed back the same way; small ones of known length go back in one piece.
Upstream failures become problem+json. A service that cannot be reached (connection refused or reset,
no connection within the connect timeout or from the pool, the connection dropped before any answer)
or that broke off its answer before the headers were sent → 503 with `Retry-After`: the client simply
retries. Only a service that took the request and did not answer in time (a read or write timeout) →
504. A service's own 503 passes through with its own `Retry-After`.
"""

from __future__ import annotations

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


def unavailable(detail: str) -> Problem:
    return Problem(503, "Service unavailable", detail, headers={"Retry-After": str(UNAVAILABLE_RETRY_S)})


def upstream_failure(upstream: str, exc: httpx.HTTPError) -> Problem:
    """504 when the service has the request and does not answer in time; 503 (retry) when it cannot be
    reached at all — a connect or pool timeout included: the request never got to it."""
    if isinstance(exc, httpx.ReadTimeout | httpx.WriteTimeout):
        metrics.UPSTREAM_ERRORS.labels(upstream, "timeout").inc()
        return Problem(504, "Upstream timeout", f"{upstream} did not answer in time")
    metrics.UPSTREAM_ERRORS.labels(upstream, "unreachable").inc()
    return unavailable(f"{upstream} is unavailable ({type(exc).__name__}); retry in {UNAVAILABLE_RETRY_S} s")


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
        raise upstream_failure(route.upstream, exc) from exc
    kept = {name: response.headers[name] for name in FORWARDED_RESPONSE_HEADERS if name in response.headers}
    length = _known_length(response.headers)
    # A small answer of known size (most are) goes back in one piece: a stream would cost a task group
    # and a disconnect listener per request.
    whole_answer = (
        await _read_raw(response, route.upstream)
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


async def _read_raw(response: httpx.Response, upstream: str) -> bytes:
    """The body as the service sent it (still encoded, like its Content-Encoding says); headers are
    not sent yet, so a broken answer can still be a 503 the client retries."""
    try:
        return b"".join([chunk async for chunk in _relay(response, upstream)])
    except httpx.HTTPError as exc:
        raise unavailable(f"{upstream} broke off its answer; retry in {UNAVAILABLE_RETRY_S} s") from exc
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
