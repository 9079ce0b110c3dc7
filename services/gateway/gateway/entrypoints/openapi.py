"""One OpenAPI document for the whole public API: the gateway's own routes and each service's public
routes (as the services describe them), with the API-key security scheme."""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import orjson

from gateway.domain.routes import ROUTES

log = logging.getLogger(__name__)
PUBLIC = {(r.method.lower(), r.template) for r in ROUTES}
# The groups a generated client and the docs page show, in this order.
TAGS = {
    "Tenants": "Health systems and vendors (platform admins create them).",
    "API keys": "Keys of a tenant, shown once, revocable.",
    "Events": "What hospitals send, and what became of each event.",
    "KPIs": "The catalogue and KPI values over any period or rolling window.",
    "Feeds": "Completeness of each facility's feeds.",
    "Contracts": "Contracts, their period inputs, audit trail and what-ifs.",
    "Settlements": "Period statements, finalization and reconciliation.",
    "Webhooks": "Settlement events pushed to a billing system (Standard Webhooks), and the same as a feed.",
}


# While a service does not answer, the partial document is kept this long: an anonymous client asking
# for it again and again costs no upstream call (docs/security.md).
PARTIAL_DOCUMENT_SECONDS = 10.0


class MergedOpenApi:
    def __init__(
        self,
        own: dict[str, Any],
        upstreams: Mapping[str, httpx.AsyncClient],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._own, self._upstreams, self._clock = own, upstreams, clock
        self._kept: tuple[bytes, float] | None = None  # the serialized document and until when it holds
        self._building = asyncio.Lock()  # one build at a time; the others wait and take its result

    async def serialized(self) -> bytes:
        """The document as JSON: kept for good once every service has answered, for
        PARTIAL_DOCUMENT_SECONDS while one has not."""
        async with self._building:
            if self._kept is None or self._kept[1] <= self._clock():
                document, complete = await self._build()
                until = float("inf") if complete else self._clock() + PARTIAL_DOCUMENT_SECONDS
                self._kept = (orjson.dumps(document), until)
            return self._kept[0]

    async def _build(self) -> tuple[dict[str, Any], bool]:
        merged = copy.deepcopy(self._own)
        merged.setdefault("components", {}).setdefault("schemas", {})
        complete = True
        for name in sorted({r.upstream for r in ROUTES}):
            try:
                response = await self._upstreams[name].get("/openapi.json", timeout=5)
                response.raise_for_status()
                _add(merged, response.json())
            except (httpx.HTTPError, ValueError) as exc:
                log.warning(
                    "service OpenAPI unavailable", extra={"upstream": name, "error": type(exc).__name__}
                )
                complete = False
        _describe_problems(merged)
        merged["components"]["securitySchemes"] = {
            "apiKey": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <API key>"}
        }
        merged["security"] = [{"apiKey": []}]
        merged["tags"] = [{"name": name, "description": text} for name, text in TAGS.items()]
        return merged, complete


def _add(merged: dict[str, Any], service: dict[str, Any]) -> None:
    for path, operations in service.get("paths", {}).items():
        for method, operation in operations.items():
            if (method, path) in PUBLIC:
                merged["paths"].setdefault(path, {})[method] = operation
    merged["components"]["schemas"].update(service.get("components", {}).get("schemas", {}))


PROBLEM = {
    "type": "object",
    "description": "RFC 9457 problem details; `errors` lists field errors with JSON paths, if any",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
}


def _describe_problems(merged: dict[str, Any]) -> None:
    """Every error answer of every operation is application/problem+json (one error map per service)."""
    merged["components"]["schemas"]["Problem"] = PROBLEM
    problem = {"$ref": "#/components/schemas/Problem"}
    for operations in merged["paths"].values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status in list(responses):
                if status.startswith(("4", "5")):
                    responses[status] = {
                        "description": responses[status].get("description", "Problem"),
                        "content": {"application/problem+json": {"schema": problem}},
                    }
            responses.setdefault(
                "default",
                {
                    "description": "An error, as problem details",
                    "content": {"application/problem+json": {"schema": problem}},
                },
            )
