"""HTTP routes of ingest.

Consumes: `POST /v1/events` (JSON object or array, CloudEvents structured or batch, NDJSON).
Produces: one message per accepted event on the events topic; a per-event result to the caller.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from ingest import metrics
from ingest.entrypoints.auth import EventWriter
from ingest.entrypoints.body import media_type, parse_items, read_limited
from ingest.entrypoints.deps import IntakeService, Limits
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
