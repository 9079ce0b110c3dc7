"""Gateway metrics (docs/operations.md): requests by route, status and role; auth failures; rate limiting."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from vr_shared.metrics import LATENCY_BUCKETS
from vr_shared.roles import KEY_ROLES

REQUESTS = Counter("vr_gateway_requests_total", "Requests answered", ["route", "status", "role"])
AUTH_FAILURES = Counter("vr_gateway_auth_failures_total", "Requests refused before routing", ["reason"])
RATE_LIMITED = Counter("vr_gateway_rate_limited_total", "Requests refused with 429", ["role"])
UPSTREAM_ERRORS = Counter("vr_gateway_upstream_errors_total", "Upstream failures", ["upstream", "kind"])
UPSTREAM_SECONDS = Histogram(
    "vr_gateway_upstream_duration_seconds",
    "Time until an upstream's response headers",
    ["upstream"],
    buckets=LATENCY_BUCKETS,
)

# Known label values start at 0, so dashboards and alerts see a series before the first occurrence.
for _reason in ("missing_key", "malformed_header", "unknown_key", "revoked_key", "expired_key"):
    AUTH_FAILURES.labels(_reason)
for _role in sorted(KEY_ROLES):
    RATE_LIMITED.labels(_role)
for _upstream in ("ingest", "kpi-engine", "settlement"):
    for _kind in ("timeout", "unreachable", "broken_response", "error"):
        UPSTREAM_ERRORS.labels(_upstream, _kind)
