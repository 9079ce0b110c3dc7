"""Cursor pages for every list of the API (docs/api.md, "Lists"): `?limit=&after=` →
`{"items": [...], "next": <cursor> | null}`.

A cursor is opaque to clients: the position of the last item of the page (its sort key), base64url.
A list is read in a stable order (by its key), so paging while items are added sees each item once and
misses none that existed when paging began. Bounded work per page: `limit` items, at most `MAX_LIMIT`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import Query

from vr_shared.web import Problem

T = TypeVar("T")
DEFAULT_LIMIT = 50
MAX_LIMIT = 200

# The two query parameters of every list.
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page (at most 200)")]
After = Annotated[str | None, Query(description="the `next` cursor of the previous page")]


def encode_cursor(position: str) -> str:
    return base64.urlsafe_b64encode(position.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    """The position a cursor names; 422 naming `$.query.after` for one this API did not make."""
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise invalid_cursor() from None


def invalid_cursor() -> Problem:
    message = "after must be the `next` cursor of a previous page"
    return Problem(
        422,
        "Invalid query parameter",
        message,
        type_="/problems/invalid-query",
        errors=[{"path": "$.query.after", "message": message, "code": "cursor"}],
    )


def page(
    items: Sequence[T], limit: int, position_of: Callable[[T], str], render: Callable[[T], Any]
) -> dict[str, Any]:
    """`items`: up to `limit + 1` items after the cursor, in order (one more tells whether a next page
    exists)."""
    shown = list(items[:limit])
    more = len(items) > limit and shown
    return {
        "items": [render(item) for item in shown],
        "next": encode_cursor(position_of(shown[-1])) if more else None,
    }


def after_position(items: Sequence[T], position: str | None, position_of: Callable[[T], str]) -> list[T]:
    """The items after a position, for lists computed whole and small by nature (periods, feeds): after
    the item the cursor names, or — should it be gone — after every item that sorts before it."""
    if position is None:
        return list(items)
    keys = [position_of(item) for item in items]
    if position in keys:
        return list(items[keys.index(position) + 1 :])
    return [item for item, key in zip(items, keys, strict=True) if key > position]


def numeric_position(cursor: str | None) -> int:
    """The position a cursor names, for lists keyed by a growing number (0: from the start); 422 for a
    cursor this API did not make."""
    position = decode_cursor(cursor)
    if position is None:
        return 0
    if not position.isdigit() or len(position) > 18:
        raise invalid_cursor()
    return int(position)
