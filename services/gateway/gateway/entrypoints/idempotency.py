"""`Idempotency-Key` on every POST (gateway.domain.idempotency): the gateway keeps the first answer to
each key of an API key and gives it again to a retry, whichever service answered it — so a retried
`POST /v1/api-keys` makes no second key, a retried tenant no second tenant, a retried finalize or event
batch the same answer.

It runs inside the request bounds (the body is already limited) and authenticates the caller first
(records belong to an API key). Without the header nothing changes.

It runs outside the app's exception handlers, so it answers its own errors as they would: the
database away (vr_shared.db.database_away) while it authenticates or claims the key → 503 with
`Retry-After`; while it keeps or releases an answer, the answer still goes out and the claim, left
unanswered, is free again after `ABANDONED_AFTER_SECONDS`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any

from fastapi.responses import Response

from gateway.bootstrap import Components
from gateway.domain.idempotency import (
    HEADER,
    MAX_KEPT_ANSWER_BYTES,
    Answer,
    Claimed,
    InProgress,
    InvalidIdempotencyKey,
    OtherRequest,
    Replay,
    checked_key,
    fingerprint,
    keeps,
)
from gateway.entrypoints.deps import authenticated
from gateway.entrypoints.proxy import UNAVAILABLE_RETRY_S
from vr_shared.db import database_away
from vr_shared.metrics import ASGIApp, Message, Receive, Scope, Send
from vr_shared.web import Problem, database_away_problem, problem_response

log = logging.getLogger(__name__)


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw_key = _header(scope, HEADER.encode()) if scope["type"] == "http" else None
        if raw_key is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        try:
            key = checked_key(raw_key)
            composed: Components = scope["app"].state.components
            address = (scope.get("client") or ("unknown",))[0]
            owner = (await authenticated(composed, _header(scope, b"authorization"), address)).key.id
            body = await _whole_body(receive)
            outcome = await composed.idempotency.claim(owner, key, _fingerprint(scope, body))
        except Exception as exc:
            refusal = _refusal(exc)
            if refusal is None:
                raise
            await _respond(scope, receive, send, problem_response(refusal))
            return
        match outcome:
            case Replay(answer):
                replayed = Response(
                    answer.body,
                    status_code=answer.status,
                    media_type=answer.content_type or None,
                    headers={"Idempotent-Replayed": "true"},
                )
                await _respond(scope, receive, send, replayed)
            case OtherRequest():
                detail = f"Idempotency-Key {key!r} was used for another request (another body or target)"
                await _respond(
                    scope, receive, send, problem_response(Problem(422, "Idempotency-Key reused", detail))
                )
            case InProgress():
                detail = f"the first request with Idempotency-Key {key!r} is still being processed"
                busy = Problem(409, "Request in progress", detail, headers={"Retry-After": "1"})
                await _respond(scope, receive, send, problem_response(busy))
            case Claimed():
                await self._first(scope, receive, send, body, composed, owner, key)

    async def _first(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        body: bytes,
        composed: Components,
        owner: str,
        key: str,
    ) -> None:
        """Process the request and keep its answer (unless it says "try again") — recorded before the
        answer's last byte leaves, so a retry that follows the answer finds it."""
        delivered, settled = False, False
        answer: dict[str, Any] = {"status": 500, "content_type": "", "chunks": [], "size": 0}

        async def replay_body() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def keep_and_send(message: Message) -> None:
            nonlocal settled
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                answer["content_type"] = next(
                    (
                        v.decode("latin-1")
                        for k, v in message.get("headers", [])
                        if k.lower() == b"content-type"
                    ),
                    "",
                )
            elif message["type"] == "http.response.body":
                chunk = message.get("body", b"")
                answer["size"] += len(chunk)
                if answer["size"] <= MAX_KEPT_ANSWER_BYTES:
                    answer["chunks"].append(chunk)
                if not message.get("more_body", False):
                    settled = True
                    if keeps(answer["status"]) and answer["size"] <= MAX_KEPT_ANSWER_BYTES:
                        whole = Answer(answer["status"], answer["content_type"], b"".join(answer["chunks"]))
                        await _unless_database_away(composed.idempotency.complete(owner, key, whole))
                    else:
                        await _unless_database_away(composed.idempotency.release(owner, key))
            await send(message)

        try:
            await self.app(scope, replay_body, keep_and_send)
        finally:
            if not settled:  # no whole answer (the client left, an error): the key is free again
                await _unless_database_away(composed.idempotency.release(owner, key))


def _refusal(exc: Exception) -> Problem | None:
    """The answer to an error met before the request is processed; None: not one answered here."""
    if isinstance(exc, InvalidIdempotencyKey):
        return Problem(400, "Bad request", str(exc))
    if isinstance(exc, Problem):
        return exc
    return database_away_problem(exc, UNAVAILABLE_RETRY_S)


async def _unless_database_away(record: Awaitable[None]) -> None:
    """Keeping or releasing a key's answer: with the database away, the client still gets its answer
    (the request was processed) and the claim stays until it counts as abandoned."""
    try:
        await record
    except Exception as exc:
        if not database_away(exc):
            raise
        log.warning(
            "idempotency record left unanswered: the database is away", extra={"error": type(exc).__name__}
        )


def _fingerprint(scope: Scope, body: bytes) -> bytes:
    target = scope["path"] + (f"?{scope['query_string'].decode('latin-1')}" if scope["query_string"] else "")
    return fingerprint("POST", target, _header(scope, b"content-type") or "", body)


async def _whole_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _respond(scope: Scope, receive: Receive, send: Send, response: Response) -> None:
    await response(scope, receive, send)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            text: str = value.decode("latin-1")
            return text
    return None
