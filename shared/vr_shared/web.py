"""HTTP plumbing every service uses: problem+json errors (RFC 9457), request ids, ops endpoints.

Each service declares its own error map (domain exception → status and title); this module turns it
into exception handlers so that every error a client sees has the same shape. An entry may hold for
some errors of its type only (`when`): `database_away_errors` answers the database away 503 with
`Retry-After` — a driver's other errors stay unexpected (500).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import asyncpg
import orjson
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from vr_shared.db import database_away
from vr_shared.limits import RequestBoundsMiddleware
from vr_shared.logging import request_id
from vr_shared.metrics import (
    AnswerHook,
    ASGIApp,
    Message,
    Receive,
    RequestMetricsMiddleware,
    Scope,
    Send,
)

# Re-exported: services import the error type with the rest of the HTTP plumbing.
from vr_shared.problems import PROBLEM_JSON as PROBLEM_JSON
from vr_shared.problems import Problem as Problem
from vr_shared.problems import problem_document

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ErrorMapping:
    status: int
    title: str
    headers: Mapping[str, str] | None = None
    # Extra members of the problem document taken from the exception (e.g. a field-error list).
    members: Callable[[Exception], Mapping[str, Any]] | None = None
    # A fixed detail instead of the exception's message (a driver's message carries SQL and parameters).
    detail: str | None = None
    # Only the errors of the type this holds for are mapped; the others stay unexpected errors (500).
    when: Callable[[Exception], bool] | None = None

    def problem(self, exc: Exception) -> Problem:
        extra = self.members(exc) if self.members else {}
        return Problem(self.status, self.title, self.detail or str(exc), headers=self.headers, **extra)


# What a database that cannot answer now raises: SQLAlchemy's wrapped driver errors, asyncpg's own, an
# OSError of asyncpg connecting (refused, reset, timed out, a name not resolved), which SQLAlchemy passes
# on unwrapped. `database_away` tells which of them say "away": any other OSError (a file not found, a
# permission refused) or one that is not the driver's stays an unexpected error.
DATABASE_ERRORS: tuple[type[Exception], ...] = (
    DBAPIError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
)


def database_away_mapping(retry_after_s: int) -> ErrorMapping:
    """503 with `Retry-After` for the database away (a restart, a failover, too many connections): the
    client simply retries, nothing was refused."""
    return ErrorMapping(
        503,
        "Service unavailable",
        headers={"Retry-After": str(retry_after_s)},
        detail=f"the database cannot answer now; retry in {retry_after_s} s",
        when=database_away,
    )


def database_away_errors(retry_after_s: int) -> dict[type[Exception], ErrorMapping]:
    """Error-map entries answering the database away 503 (`database_away_mapping`); every other error of
    those types is still an unexpected error."""
    return dict.fromkeys(DATABASE_ERRORS, database_away_mapping(retry_after_s))


def database_away_problem(exc: Exception, retry_after_s: int) -> Problem | None:
    """The 503 for an error that says the database is away, None for any other error — for code that
    runs outside the exception handlers (a middleware)."""
    return database_away_mapping(retry_after_s).problem(exc) if database_away(exc) else None


def problem_response(problem: Problem, request: Request | None = None) -> Response:
    body = problem_document(problem, None if request is None else request.url.path)
    return Response(body, status_code=problem.status, media_type=PROBLEM_JSON, headers=problem.headers)


def install_error_map(app: FastAPI, error_map: Mapping[type[Exception], ErrorMapping]) -> None:
    """Answer every error as problem+json: `Problem`, framework errors and the service's own map."""

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        return problem_response(exc, request)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return problem_response(Problem(exc.status_code, _title(exc.status_code), str(exc.detail)), request)

    async def on_request_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = [_request_error(e) for e in exc.errors()]
        return problem_response(
            Problem(422, "Invalid request", "the request does not match its schema", errors=errors), request
        )

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.error("unhandled error", exc_info=exc)  # the formatter redacts identifiers in the traceback
        return problem_response(Problem(500, "Internal error", "the error was logged; retry later"), request)

    app.add_exception_handler(Exception, on_unexpected)
    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_request_validation)
    for exc_type, mapping in error_map.items():
        app.add_exception_handler(exc_type, _mapped_handler(mapping))


def _mapped_handler(mapping: ErrorMapping) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handle(request: Request, exc: Exception) -> Response:
        if mapping.when is not None and not mapping.when(exc):
            raise exc  # not this mapping's error: on to the unexpected-error handler, as if unmapped
        return problem_response(mapping.problem(exc), request)

    return handle


def _request_error(error: Mapping[str, Any]) -> dict[str, str]:
    loc = [str(part) for part in error.get("loc", ()) if part != "body"]
    return {
        "path": "$" + "".join(f".{p}" for p in loc),
        "message": str(error.get("msg")),
        "code": str(error.get("type")),
    }


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class RequestIdMiddleware:
    """Takes `X-Request-ID` from the caller (or makes one), logs the request line, echoes the id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _header(scope, b"x-request-id") or uuid.uuid4().hex
        token = request_id.set(rid)
        started, status = time.perf_counter(), 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = getattr(scope.get("route"), "path", None)
            if route not in ("/metrics", "/healthz", "/readyz"):
                log.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "route": route or "unmatched",
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    },
                )
            request_id.reset(token)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            text: str = value.decode("latin-1").strip()
            # Reject ids that would let a caller inject into logs; 1-128 visible ASCII characters.
            if 0 < len(text) <= 128 and text.isascii() and text.isprintable():
                return text
    return None


ReadinessCheck = Callable[[], Awaitable[bool]]


def ops_router(
    checks: Mapping[str, ReadinessCheck],
    reported: Mapping[str, ReadinessCheck] | None = None,
    stopped: Callable[[], Sequence[str]] | None = None,
) -> APIRouter:
    """`/healthz` (the process answers, and none of its background work has `stopped` on an error),
    `/readyz` (every named dependency of `checks` answers; those of `reported` are shown but do not
    decide: the service serves without them). `/metrics` is not here: it is served on the internal
    metrics port (vr_shared.runtime.serve)."""
    router = APIRouter(include_in_schema=False)

    @router.get("/healthz")
    async def healthz() -> Response:
        # A consumer loop that died leaves a process that answers but does nothing: restart it.
        dead = list(stopped()) if stopped is not None else []
        body = {"status": "stopped", "stopped": dead} if dead else {"status": "ok"}
        return Response(orjson.dumps(body), status_code=503 if dead else 200, media_type="application/json")

    @router.get("/readyz")
    async def readyz() -> Response:
        results = {name: await check() for name, check in checks.items()}
        ready = all(results.values())
        shown = {**results, **{name: await check() for name, check in (reported or {}).items()}}
        body = {
            "status": "ready" if ready else "not ready",
            "checks": {k: "ok" if v else "unreachable" for k, v in shown.items()},
        }
        return Response(orjson.dumps(body), status_code=200 if ready else 503, media_type="application/json")

    return router


def add_common_middleware(
    app: FastAPI, service: str, max_body_bytes: int, on_answer: AnswerHook | None = None
) -> None:
    """Request ids outermost (every log line of the request carries one), then metrics by route
    (`on_answer`: the service's own per-request metric, fed by the same middleware), then the path
    check and the body limit, before anything reads a body."""
    app.add_middleware(RequestBoundsMiddleware, max_bytes=max_body_bytes)
    app.add_middleware(RequestMetricsMiddleware, service=service, on_answer=on_answer)
    app.add_middleware(RequestIdMiddleware)


def document_request_body(
    app: FastAPI, path: str, method: str, schema_of: TypeAdapter[Any], media_types: Sequence[str]
) -> None:
    """Describe a request body the route reads itself (several media types, or a document validated
    by the domain with JSON-path errors) in the app's OpenAPI, with its models under components."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        schema = schema_of.json_schema(ref_template="#/components/schemas/{model}")
        components = document.setdefault("components", {}).setdefault("schemas", {})
        components.update(schema.pop("$defs", {}))
        content = {media_type: {"schema": schema} for media_type in media_types}
        document["paths"][path][method]["requestBody"] = {"required": True, "content": content}
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
