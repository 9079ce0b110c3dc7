"""Validation of raw JSON items into catalogue events, with errors as JSON paths.

A batch is validated in one call into pydantic-core (fast path); only when it fails are the items
validated one by one, so that valid events of a mixed batch still come out as models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from vr_shared.events.catalogue import EVENT_TYPES, Event
from vr_shared.events.types import PATTERN_RULES


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with one event: where (JSON path from the event's root) and what."""

    path: str
    message: str
    code: str

    def as_json(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message, "code": self.code}


_EVENT = TypeAdapter[Event](Event)
_EVENTS = TypeAdapter[list[Event]](list[Event])
_EVENT_TYPE_NAMES = frozenset(EVENT_TYPES)


def json_path(loc: Sequence[int | str]) -> str:
    """`('data', 'tiers', 0)` → `$.data.tiers[0]`."""
    parts = ["$"]
    for part in loc:
        parts.append(f"[{part}]" if isinstance(part, int) else f".{part}")
    return "".join(parts)


def _errors_of(exc: ValidationError, *, skip: int = 0) -> dict[int, list[FieldError]]:
    """Field errors by item index; `skip` leading loc parts are positional (the list index)."""
    by_item: dict[int, list[FieldError]] = {}
    for err in exc.errors(include_url=False, include_input=False):
        loc = list(err["loc"])
        index = int(loc[0]) if skip else 0
        loc = loc[skip:]
        # A tagged union puts the tag ("encounter.admitted") into the location; it is not a field.
        if loc and isinstance(loc[0], str) and loc[0] in _EVENT_TYPE_NAMES:
            loc = loc[1:]
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc, message = ["type"], _unknown_type_message(err)
        elif err["type"] == "string_pattern_mismatch" and (rule := _pattern_rule(err)):
            message = rule
        else:
            message = err["msg"].removeprefix("Value error, ")
        by_item.setdefault(index, []).append(FieldError(json_path(loc), message, err["type"]))
    return by_item


def _pattern_rule(err: Any) -> str | None:
    pattern = (err.get("ctx") or {}).get("pattern")
    return PATTERN_RULES.get(pattern) if isinstance(pattern, str) else None


def _unknown_type_message(err: Any) -> str:
    if err["type"] == "union_tag_not_found":
        return "field required: type (one of the event catalogue)"
    return "unknown event type; expected one of: " + ", ".join(EVENT_TYPES)


def validate_events(
    items: Sequence[Any], *, json_array: bytes | None = None
) -> list[Event | list[FieldError]]:
    """Each item becomes either its event model or the list of its field errors (same order).

    `json_array`, when given, is the same items as one JSON array: validating from JSON bytes inside
    pydantic-core skips building Python objects first and is about a third faster.
    """
    try:
        if json_array is not None:
            try:
                return list(_EVENTS.validate_json(json_array))
            except ValidationError as exc:
                if any(len(e["loc"]) == 0 for e in exc.errors()):  # bytes this parser refuses: use the items
                    json_array = None
                else:
                    raise
        return list(_EVENTS.validate_python(items))
    except ValidationError as exc:
        if any(len(e["loc"]) == 0 for e in exc.errors()):  # not a list at all: a caller's bug
            raise
        failed = _errors_of(exc, skip=1)
    results: list[Event | list[FieldError]] = []
    for index, item in enumerate(items):
        if index in failed:
            results.append(failed[index])
        else:
            results.append(_EVENT.validate_python(item))
    return results


def validate_event(item: Any) -> Event:
    """Validate one item (e.g. a message read back from the topic); raises ValidationError."""
    return _EVENT.validate_python(item)
