"""`Idempotency-Key` on every POST (gateway.domain.idempotency): the gateway keeps the first answer to
each key of an API key and gives it again to a retry, whichever service answered it — so a retried
`POST /v1/api-keys` makes no second key, a retried tenant no second tenant, a retried finalize or event
batch the same answer.

It runs inside the request bounds (the body is already limited) and authenticates the caller first
(records belong to an API key). Without the header nothing changes.
"""

from __future__ import annotations

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
from vr_shared.metrics import ASGIApp, Message, Receive, Scope, Send
from vr_shared.web import Problem, problem_response


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
            caller = await authenticated(composed, _header(scope, b"authorization"), address)
        except InvalidIdempotencyKey as exc:
            await _respond(scope, receive, send, problem_response(Problem(400, "Bad request", str(exc))))
            return
        except Problem as problem:
            await _respond(scope, receive, send, problem_response(problem))
            return
        body = await _whole_body(receive)
        target = scope["path"] + (
            f"?{scope['query_string'].decode('latin-1')}" if scope["query_string"] else ""
        )
        print_ = fingerprint("POST", target, _header(scope, b"content-type") or "", body)
        owner = caller.key.id
        match await composed.idempotency.claim(owner, key, print_):
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
                        await composed.idempotency.complete(owner, key, whole)
                    else:
                        await composed.idempotency.release(owner, key)
            await send(message)

        try:
            await self.app(scope, replay_body, keep_and_send)
        finally:
            if not settled:  # no whole answer (the client left, an error): the key is free again
                await composed.idempotency.release(owner, key)


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
