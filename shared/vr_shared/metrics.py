"""Prometheus helpers: the HTTP metrics every service exports and the `/metrics` endpoint.

Names follow docs/operations.md: `vr_` prefix, `_total` counters, `_seconds` histograms, base units.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "vr_http_requests_total", "HTTP requests handled", ["service", "method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "vr_http_request_duration_seconds",
    "Time from request start to response end",
    ["service", "method", "route"],
    buckets=LATENCY_BUCKETS,
)


AnswerHook = Callable[[str, int, Mapping[str, Any]], None]
"""Called once per answered request with (route template, status, request state): a service's own
per-request metric (the gateway's by role) without a second middleware."""


class RequestMetricsMiddleware:
    """Counts and times requests by route *template* (never the raw path: ids would explode cardinality).

    A handler that routes further itself (the gateway's proxy) names the template in
    `request.state.route`; otherwise the matched route's path is used.
    """

    def __init__(self, app: ASGIApp, service: str, on_answer: AnswerHook | None = None) -> None:
        self.app = app
        self.service = service
        self.on_answer = on_answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record_status)
        finally:
            state = scope.get("state") or {}
            template = state.get("route") or getattr(scope.get("route"), "path", None) or "unmatched"
            HTTP_REQUESTS.labels(self.service, scope["method"], template, str(status)).inc()
            HTTP_LATENCY.labels(self.service, scope["method"], template).observe(
                time.perf_counter() - started
            )
            if self.on_answer is not None:
                self.on_answer(template, status, state)


def render_metrics(registry: CollectorRegistry = REGISTRY) -> tuple[bytes, str]:
    return generate_latest(registry), CONTENT_TYPE_LATEST
