"""One OpenAPI document for the whole public API: the gateway's own routes and each service's public
routes (as the services describe them), with the API-key security scheme."""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import Any

import httpx

from gateway.domain.routes import ROUTES

log = logging.getLogger(__name__)
PUBLIC = {(r.method.lower(), r.template) for r in ROUTES}


class MergedOpenApi:
    def __init__(self, own: dict[str, Any], upstreams: Mapping[str, httpx.AsyncClient]) -> None:
        self._own, self._upstreams = own, upstreams
        self._complete: dict[str, Any] | None = None

    async def document(self) -> dict[str, Any]:
        """Cached once every service has answered; until then rebuilt on each request."""
        if self._complete is not None:
            return self._complete
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
        if complete:
            self._complete = merged
        return merged


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
