"""Idempotency-Key semantics (the IETF httpapi idempotency-key draft), pure.

A client that may retry a POST sends `Idempotency-Key: <unique value>`. The first request with a key
is processed and its answer kept; a retry with the same key and the same request gets that answer again
(nothing is done twice: no second API key, no second tenant); the same key with another request is a
client error (422); a retry while the first is still being processed is 409. Answers that say "try
again" (429, 5xx) are not kept, so a retry after them is processed anew. Records live 24 hours.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

HEADER = "idempotency-key"
RETENTION_HOURS = 24
# A first request whose answer never came (its gateway instance died) stops blocking its key after this.
ABANDONED_AFTER_SECONDS = 60
MAX_KEPT_ANSWER_BYTES = 1024 * 1024  # larger answers are not kept (the request is processed again)


class InvalidIdempotencyKey(ValueError):
    pass


def checked_key(value: str) -> str:
    """1-255 visible ASCII characters (a UUID is the usual choice)."""
    if not 0 < len(value) <= 255 or not value.isascii() or not value.isprintable():
        raise InvalidIdempotencyKey("Idempotency-Key must be 1-255 visible ASCII characters, e.g. a UUID")
    return value


def fingerprint(method: str, target: str, content_type: str, body: bytes) -> bytes:
    """What makes two requests the same request: method, path and query, content type and body."""
    digest = hashlib.sha256()
    for part in (method.encode(), target.encode(), content_type.encode()):
        digest.update(len(part).to_bytes(4, "big") + part)
    digest.update(body)
    return digest.digest()


def keeps(status: int) -> bool:
    """Whether an answer is final for its key: everything but "try again later"."""
    return status < 500 and status != 429


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    content_type: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Claimed:
    """This request is the first with its key: process it."""


@dataclass(frozen=True, slots=True)
class Replay:
    answer: Answer


@dataclass(frozen=True, slots=True)
class OtherRequest:
    """The key was used for a different request."""


@dataclass(frozen=True, slots=True)
class InProgress:
    """The first request with this key has not been answered yet."""


ClaimOutcome = Claimed | Replay | OtherRequest | InProgress
