"""HTTP routes of ingest.

Consumes: `POST /v1/events` (JSON object or array, CloudEvents structured or batch, NDJSON).
Produces: one message per accepted event on the events topic; a per-event result to the caller.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel

from ingest import metrics
from ingest.adapters.publisher import BrokerUnavailable
from ingest.entrypoints.auth import EventWriter
from ingest.entrypoints.body import PayloadTooLarge, media_type, parse_items, read_limited
from ingest.entrypoints.deps import IntakeService, Limits, RetryAfter
from ingest.handlers import broker_unavailable_acks, ingest_hl7, read_hl7
from vr_shared.web import PROBLEM_JSON, Problem

router = APIRouter()


class FieldErrorResponse(BaseModel):
    path: str
    message: str
    code: str


class EventResultResponse(BaseModel):
    index: int
    id: str | None
    status: str
    errors: list[FieldErrorResponse] = []


class IngestResponse(BaseModel):
    accepted: int
    rejected: int
    results: list[EventResultResponse]


@router.post(
    "/v1/events",
    operation_id="submitEvents",
    tags=["Events"],
    status_code=202,
    response_model=IngestResponse,
    summary="Submit events (one, a JSON array, CloudEvents structured/batch, or NDJSON)",
    responses={
        413: {"description": "More than the event or byte limit", "content": {PROBLEM_JSON: {}}},
        422: {"description": "No event of the request was valid", "content": {PROBLEM_JSON: {}}},
        503: {
            "description": "The broker did not acknowledge; retry after Retry-After",
            "content": {PROBLEM_JSON: {}},
        },
    },
)
async def submit_events(
    request: Request,
    caller: EventWriter,
    intake: IntakeService,
    limits: Limits,
) -> Response:
    try:
        body = parse_items(await read_limited(request, limits), media_type(request), limits)
    except Problem as problem:
        metrics.REQUEST_REJECTIONS.labels(problem.type.rsplit("/", 1)[-1]).inc()
        raise
    metrics.BATCH_SIZE.observe(len(body.items))
    report = await intake.ingest(body, caller, datetime.now(UTC))
    if report.accepted == 0:
        raise Problem(
            422,
            "No event accepted",
            f"all {report.rejected} events were rejected",
            type_="/problems/invalid-events",
            errors=_flat_errors(report.results),
            **report.as_json(),
        )
    return Response(orjson.dumps(report.as_json()), status_code=202, media_type="application/json")


def _flat_errors(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"index": r["index"], **error} for r in results for error in r.get("errors", [])]


HL7_MEDIA_TYPES = ("x-application/hl7-v2+er7", "application/hl7-v2", "text/plain")
HL7_ANSWER = "x-application/hl7-v2+er7"


@router.post(
    "/v1/hl7v2",
    operation_id="submitAdtMessages",
    tags=["Events"],
    summary="Submit HL7 v2 ADT messages (ER7); one ACK per message",
    responses={
        200: {"description": "One ACK per message (MSA-1 AA, AE or AR)", "content": {HL7_ANSWER: {}}},
        413: {"description": "More than the message or byte limit", "content": {PROBLEM_JSON: {}}},
        503: {
            "description": "Not stored: each message with events is AR; send again",
            "content": {HL7_ANSWER: {}},
        },
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {media: {"schema": {"type": "string"}} for media in HL7_MEDIA_TYPES},
        }
    },
)
async def submit_hl7v2(
    request: Request,
    caller: EventWriter,
    intake: IntakeService,
    limits: Limits,
    retry_after: RetryAfter,
    facility: Annotated[str | None, Query(max_length=128, description="the facility, else MSH-4")] = None,
) -> Response:
    """Each message's events follow the path of every event; its ACK says what became of them. While
    the broker does not acknowledge, every message with events is AR (503 with Retry-After)."""
    kind = media_type(request)
    if kind not in HL7_MEDIA_TYPES:
        raise Problem(
            415,
            "Unsupported media type",
            f"content type {kind or '(none)'!r}; send ER7 as {', '.join(HL7_MEDIA_TYPES)}",
            type_="/problems/unsupported-media-type",
        )
    texts = split_messages(await read_limited(request, limits))
    if len(texts) > limits.max_events:
        raise PayloadTooLarge(f"request holds {len(texts)} messages; the limit is {limits.max_events}")
    if not texts:
        raise Problem(422, "No messages", "the body holds no HL7 message (MSH)", type_="/problems/no-events")
    messages = read_hl7(texts, caller.timezone, facility)
    try:
        acks = await ingest_hl7(intake, messages, caller, datetime.now(UTC))
    except BrokerUnavailable:
        body = "\r\n".join(broker_unavailable_acks(messages))  # messages apart: a CR LF between
        return Response(body, status_code=503, media_type=HL7_ANSWER, headers={"Retry-After": retry_after})
    return Response("\r\n".join(acks), media_type=HL7_ANSWER)


def split_messages(body: bytes) -> list[str]:
    """ER7 messages of a body: segments end in CR (LF and CR LF taken too), each message starts with
    MSH; MLLP framing bytes, if an engine left them, are dropped."""
    text = body.decode("utf-8", errors="replace").translate({0x0B: None, 0x1C: None})
    segments = [s for s in text.replace("\r\n", "\r").replace("\n", "\r").split("\r") if s.strip()]
    messages: list[list[str]] = []
    for segment in segments:
        if segment.startswith("MSH") or not messages:
            messages.append([])
        messages[-1].append(segment)
    return ["\r".join(m) for m in messages]
