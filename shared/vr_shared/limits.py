"""What a request may be before anything reads it (docs/security.md): a bounded body, a plain path and
plain query parameters.

A path or query parameter holding a control character (NUL among them: no database takes it), or a
path with a `.`/`..` segment (also percent-encoded: the path here is decoded), is answered 400 — at the
gateway such a path would be authorised as one route and could be normalised into another downstream.

Every request body is bounded before anything reads it.
The middleware sits below the request id and metrics middleware and above everything that reads a
body: FastAPI's body parsing (which runs before any dependency, authentication included), the
gateway's proxy and ingest's own reader. A declared `Content-Length` over the limit is answered 413
without reading a byte; a body of unknown length (chunked) is counted as it arrives and answered 413 the
moment it passes the limit — the application then sees the client as gone, and whatever it was doing
with the partial body ends there. Memory stays flat whatever the client sends.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import unquote_plus

from vr_shared.metrics import ASGIApp, Message, Receive, Scope, Send
from vr_shared.problems import PROBLEM_JSON, Problem, problem_document

# After a 413 the rest of the body is read and dropped for this long, or this much, before the
# connection closes: a socket closed with unread data resets the connection, and the reset can destroy
# the answer before the client reads it (the "lingering close" of HTTP servers). Dropped, so memory
# stays flat; bounded in bytes too, so a fast client on a fast link cannot push its whole body through
# the linger (on loopback 1 s is gigabytes). 4 MiB: what the gateway may still be forwarding when a
# service refuses (the gateway takes 5 MiB, a service's own limit is 1 MiB) — the gateway must read
# the service's 413, not a reset.
LINGER_SECONDS = 1.0
LINGER_MAX_BYTES = 4 * 1024 * 1024


def _problem(status: int, type_: str, title: str, detail: str, path: str) -> bytes:
    return problem_document(Problem(status, title, detail, type_=type_), _printable(path))


def _printable(path: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in path)


def plain_path(path: str) -> bool:
    return all(c.isprintable() for c in path) and not any(s in (".", "..") for s in path.split("/"))


def plain_query(raw: bytes) -> bool:
    """No control character in any decoded parameter (a NUL reaches no database)."""
    text = unquote_plus(raw.decode("latin-1"), errors="replace")
    return not any(ord(c) < 32 or ord(c) == 127 for c in text)


class RequestBoundsMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        if not plain_path(path):
            detail = "the path holds a control character or a dot segment"
            await _answer(send, 400, _problem(400, "/problems/bad-path", "Bad request", detail, path))
            return
        if not plain_query(scope.get("query_string", b"")):
            detail = "a query parameter holds a control character"
            await _answer(send, 400, _problem(400, "/problems/bad-query", "Bad request", detail, path))
            return
        if (declared := _declared_length(scope)) > self.max_bytes:
            await self.refuse(scope, send, f"request body is {declared} bytes", receive)
            return
        counted = _CountedBody(self, scope, receive, send)
        try:
            await self.app(scope, counted.receive, counted.send)
        except Exception:
            if not counted.refused:
                raise
            # The application failed on the body it could not have: the client has its answer.

    async def refuse(self, scope: Scope, send: Send, what: str, receive: Receive) -> None:
        detail = f"{what}; the limit is {self.max_bytes} bytes"
        path = str(scope.get("path", ""))
        problem = _problem(413, "/problems/payload-too-large", "Payload too large", detail, path)
        await _answer(send, 413, problem, finished=False)
        await _drop_the_rest(receive)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class _CountedBody:
    """The application's view of one request: its body counted as it arrives, refused (413) once past
    the limit — unless the application has started its answer, then only cut off."""

    def __init__(self, bounds: RequestBoundsMiddleware, scope: Scope, receive: Receive, send: Send) -> None:
        self._bounds, self._scope, self._receive, self._send = bounds, scope, receive, send
        self.received, self.refused, self.started = 0, False, False

    async def receive(self) -> Message:
        if self.refused:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self._bounds.max_bytes:
                self.refused = True
                if not self.started:
                    await self._bounds.refuse(
                        self._scope, self._send, "request body exceeds the limit", self._receive
                    )
                return {"type": "http.disconnect"}
        return message

    async def send(self, message: Message) -> None:
        if self.refused:
            return  # the client has its 413 already
        self.started = True
        await self._send(message)


async def _drop_the_rest(receive: Receive) -> None:
    until, dropped = time.monotonic() + LINGER_SECONDS, 0
    try:
        while (left := until - time.monotonic()) > 0 and dropped < LINGER_MAX_BYTES:
            message = await asyncio.wait_for(receive(), timeout=left)
            if message["type"] != "http.request" or not message.get("more_body", False):
                return
            dropped += len(message.get("body", b""))
    except TimeoutError:
        return


async def _answer(send: Send, status: int, body: bytes, *, finished: bool = True) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": not finished})


def _declared_length(scope: Scope) -> int:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() else 0
    return 0
