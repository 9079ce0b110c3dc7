"""Reading a request body within its size limit and turning it into a list of items by content type."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request

from ingest.domain.intake import BodyLimits
from ingest.handlers import ParsedBody, Unparseable
from vr_shared.web import Problem

JSON = "application/json"
CLOUDEVENTS = "application/cloudevents+json"
CLOUDEVENTS_BATCH = "application/cloudevents-batch+json"
NDJSON = "application/x-ndjson"
SUPPORTED = (JSON, CLOUDEVENTS, CLOUDEVENTS_BATCH, NDJSON)


class PayloadTooLarge(Problem):
    def __init__(self, detail: str) -> None:
        super().__init__(413, "Payload too large", detail, type_="/problems/payload-too-large")


async def read_limited(request: Request, limits: BodyLimits) -> bytes:
    """The body, refusing (413) as soon as it exceeds the limit — a 50 MB upload is not buffered first."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limits.max_bytes:
        raise PayloadTooLarge(f"request body is {int(declared)} bytes; the limit is {limits.max_bytes} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limits.max_bytes:
            raise PayloadTooLarge(f"request body exceeds the limit of {limits.max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def parse_items(body: bytes, content_type: str, limits: BodyLimits) -> ParsedBody:
    if content_type not in SUPPORTED:
        raise Problem(
            415,
            "Unsupported media type",
            f"content type {content_type or '(none)'!r} is not supported; use one of: {', '.join(SUPPORTED)}",
            type_="/problems/unsupported-media-type",
        )
    parsed = _ndjson_items(body, limits) if content_type == NDJSON else _json_items(body, content_type)
    if len(parsed.items) > limits.max_events:
        raise PayloadTooLarge(
            f"request holds {len(parsed.items)} events; the limit is {limits.max_events} per request"
        )
    if not parsed.items:
        raise Problem(422, "No events", "the request holds no events", type_="/problems/no-events", errors=[])
    return parsed


def _json_items(body: bytes, content_type: str) -> ParsedBody:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Problem(
            400, "Malformed JSON", f"the body is not valid JSON: {exc}", type_="/problems/malformed-json"
        ) from exc
    if content_type == CLOUDEVENTS and not isinstance(document, dict):
        raise Problem(
            400,
            "Malformed CloudEvent",
            f"{CLOUDEVENTS} carries one event object; send arrays as {CLOUDEVENTS_BATCH}",
            type_="/problems/malformed-json",
        )
    if content_type == CLOUDEVENTS_BATCH and not isinstance(document, list):
        raise Problem(
            400,
            "Malformed CloudEvents batch",
            f"{CLOUDEVENTS_BATCH} carries a JSON array of events",
            type_="/problems/malformed-json",
        )
    if isinstance(document, list):
        return ParsedBody(document, body)
    if isinstance(document, dict):
        return ParsedBody([document], b"[" + body + b"]")
    raise Problem(
        400,
        "Malformed body",
        "the body must be an event object or an array of events",
        type_="/problems/malformed-json",
    )


def _ndjson_items(body: bytes, limits: BodyLimits) -> ParsedBody:
    """Lines are counted before any is parsed: a body of too many events costs no parsing."""
    lines = [(number, line.strip()) for number, line in enumerate(body.split(b"\n"), start=1)]
    lines = [(number, line) for number, line in lines if line]
    if len(lines) > limits.max_events:
        raise PayloadTooLarge(
            f"request holds {len(lines)} lines; the limit is {limits.max_events} events per request"
        )
    items: list[Any] = []
    valid_lines: list[bytes] = []
    for number, line in lines:
        try:
            items.append(orjson.loads(line))
            valid_lines.append(line)
        except orjson.JSONDecodeError as exc:
            items.append(Unparseable(f"line {number} is not valid JSON: {exc}"))
    return ParsedBody(items, b"[" + b",".join(valid_lines) + b"]")
