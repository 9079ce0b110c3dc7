"""Which upstream serves each public path, and which roles may call it (docs/security.md).

The gateway refuses a role that may never call a route (403) before anything reaches a service; the
services then decide what the caller may see (their tenant's facilities, the contracts it is party
to). Paths the table does not know are 404 here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vr_shared.roles import ADMINS, FINALIZERS, READERS, WEBHOOK_OWNERS, Role


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    upstream: str  # ingest, kpi-engine or settlement
    roles: frozenset[str]
    template: str  # the route as documented, for metrics labels


def _route(method: str, template: str, upstream: str, roles: frozenset[Role]) -> Route:
    regex = re.sub(r"\{[a-z_]+\}", r"[^/]+", re.escape(template).replace(r"\{", "{").replace(r"\}", "}"))
    return Route(method, re.compile(f"^{regex}$"), upstream, frozenset(roles), template)


ROUTES = (
    _route("POST", "/v1/events", "ingest", frozenset({Role.PIPELINE})),
    _route("POST", "/v1/hl7v2", "ingest", frozenset({Role.PIPELINE})),
    _route("POST", "/v1/fhir", "ingest", frozenset({Role.PIPELINE})),
    _route("GET", "/v1/fhir/metadata", "ingest", READERS | {Role.PIPELINE}),
    _route(
        "GET",
        "/v1/events/{source}/{event_id}",
        "kpi-engine",
        frozenset({Role.PLATFORM_ADMIN, Role.TENANT_ADMIN, Role.PIPELINE, Role.OPS}),
    ),
    _route("GET", "/v1/kpis", "kpi-engine", READERS),
    _route("GET", "/v1/feeds", "kpi-engine", READERS | {Role.PIPELINE}),
    _route("POST", "/v1/kpis/readings", "kpi-engine", READERS),
    _route("GET", "/v1/kpis/{kpi}/values", "kpi-engine", READERS),
    _route("GET", "/v1/kpis/{kpi}/rolling", "kpi-engine", READERS),
    _route("POST", "/v1/contracts:simulate", "settlement", READERS),
    _route("POST", "/v1/contracts", "settlement", ADMINS),
    _route("GET", "/v1/contracts", "settlement", READERS),
    _route("GET", "/v1/contracts/{contract_id}", "settlement", READERS),
    _route("PUT", "/v1/contracts/{contract_id}", "settlement", ADMINS),
    _route("GET", "/v1/contracts/{contract_id}/periods/{period}/inputs", "settlement", READERS),
    _route(
        "PUT",
        "/v1/contracts/{contract_id}/periods/{period}/inputs",
        "settlement",
        ADMINS,
    ),
    _route("GET", "/v1/contracts/{contract_id}/settlements", "settlement", READERS),
    _route("GET", "/v1/contracts/{contract_id}/settlements/{period}", "settlement", READERS),
    _route("GET", "/v1/contracts/{contract_id}/settlements/{period}/adjustments", "settlement", READERS),
    _route(
        "POST",
        "/v1/contracts/{contract_id}/settlements/{period}/finalize",
        "settlement",
        FINALIZERS,
    ),
    _route(
        "POST",
        "/v1/contracts/{contract_id}/settlements/{period}/reconcile",
        "settlement",
        FINALIZERS,
    ),
    _route("GET", "/v1/contracts/{contract_id}/audit", "settlement", READERS),
    _route("POST", "/v1/webhook-endpoints", "settlement", WEBHOOK_OWNERS),
    _route("GET", "/v1/webhook-endpoints", "settlement", WEBHOOK_OWNERS),
    _route("GET", "/v1/webhook-endpoints/{endpoint_id}", "settlement", WEBHOOK_OWNERS),
    _route("DELETE", "/v1/webhook-endpoints/{endpoint_id}", "settlement", WEBHOOK_OWNERS),
    _route("POST", "/v1/webhook-endpoints/{endpoint_id}/rotate-secret", "settlement", WEBHOOK_OWNERS),
    _route("POST", "/v1/webhook-endpoints/{endpoint_id}/enable", "settlement", WEBHOOK_OWNERS),
    _route("GET", "/v1/webhook-endpoints/{endpoint_id}/deliveries", "settlement", WEBHOOK_OWNERS),
    _route(
        "POST",
        "/v1/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/replay",
        "settlement",
        WEBHOOK_OWNERS,
    ),
    _route("GET", "/v1/settlement-events", "settlement", READERS),
)


def match(method: str, path: str) -> tuple[Route | None, bool]:
    """The route for this method and path, and whether the path exists under another method."""
    known_path = False
    for route in ROUTES:
        if route.pattern.match(path):
            if route.method == method:
                return route, True
            known_path = True
    return None, known_path
