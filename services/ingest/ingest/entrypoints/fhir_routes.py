"""FHIR R4 routes of ingest (docs/interop.md): `POST /v1/fhir` (a Bundle, or Bulk Data NDJSON) answered
by a batch-response Bundle, and `GET /v1/fhir/metadata` (the CapabilityStatement).

Consumes: FHIR JSON read with decimals for numbers (money never passes through a float). Produces: the
catalogue events the resources state, on the path every event takes; errors as OperationOutcomes.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from ingest.adapters.publisher import BrokerUnavailable
from ingest.domain.fhir import Issue, capability_statement, operation_outcome
from ingest.entrypoints.auth import EventWriter
from ingest.entrypoints.body import media_type, read_limited
from ingest.entrypoints.deps import IntakeService, Limits, RetryAfter
from ingest.handlers import Unparseable, ingest_fhir, read_fhir_bundle, read_fhir_lines
from vr_shared.auth import caller_with_role
from vr_shared.identity import Identity
from vr_shared.roles import READERS, WRITERS

router = APIRouter(tags=["Events"])

FHIR_JSON = "application/fhir+json"
FHIR_NDJSON = "application/fhir+ndjson"
BUNDLE_TYPES = frozenset({"batch", "transaction", "collection"})
# The standard library's parser (the one that reads numbers as decimals) recurses once per level and
# raises RecursionError near Python's limit (about 1,000): no FHIR resource nests a tenth as deep.
TOO_DEEP = "the JSON nests arrays or objects too deeply to be FHIR"


class FhirProblem(Exception):
    """A request-level refusal, answered as an OperationOutcome."""

    def __init__(self, status: int, code: str, diagnostics: str, expression: str = "") -> None:
        super().__init__(diagnostics)
        self.status, self.issue = status, Issue(code, diagnostics, expression)


def _fhir(document: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(document, default=str, separators=(",", ":"))
    return Response(body, status_code=status, media_type=FHIR_JSON, headers=headers)


@router.get(
    "/v1/fhir/metadata",
    operation_id="getFhirCapabilityStatement",
    summary="The FHIR CapabilityStatement of /v1/fhir",
    responses={200: {"content": {FHIR_JSON: {}}}},
    dependencies=[Depends(caller_with_role(READERS | WRITERS))],  # any key of the platform
)
async def fhir_metadata() -> Response:
    return _fhir(capability_statement(datetime.now(UTC)))


@router.post(
    "/v1/fhir",
    operation_id="submitFhir",
    summary="Submit FHIR R4: a batch/transaction/collection Bundle, or Bulk Data NDJSON",
    responses={
        200: {"description": "A batch-response Bundle, one entry per resource", "content": {FHIR_JSON: {}}},
        503: {"description": "Not stored; send again after Retry-After", "content": {FHIR_JSON: {}}},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                FHIR_JSON: {"schema": {"type": "object"}},
                FHIR_NDJSON: {"schema": {"type": "string"}},
            },
        }
    },
)
async def submit_fhir(
    request: Request,
    caller: EventWriter,
    intake: IntakeService,
    limits: Limits,
    retry_after: RetryAfter,
    facility: Annotated[
        str | None, Query(max_length=64, description="the facility, else serviceProvider")
    ] = None,
) -> Response:
    """Each resource's catalogue events follow the path of every event; the batch-response says, per
    entry, 202 (stored), 200 (understood, nothing to measure), 422 (the element at fault, by FHIRPath)
    or 501 (a measured type not mapped yet)."""
    try:
        mapped = _read(
            await read_limited(request, limits), media_type(request), limits.max_events, caller, facility
        )
        entries = await ingest_fhir(intake, mapped, caller, datetime.now(UTC))
    except FhirProblem as problem:
        return _fhir(operation_outcome([problem.issue]), problem.status)
    except BrokerUnavailable as exc:
        outcome = operation_outcome([Issue("transient", f"nothing was stored: {exc}; send it again", "")])
        return _fhir(outcome, 503, {"Retry-After": retry_after})
    return _fhir({"resourceType": "Bundle", "type": "batch-response", "entry": entries})


def _read(body: bytes, kind: str, max_entries: int, caller: Identity, facility: str | None) -> list[Any]:
    if kind == FHIR_NDJSON:
        lines = [line for line in body.split(b"\n") if line.strip()]
        if len(lines) > max_entries:
            raise FhirProblem(413, "too-costly", f"{len(lines)} lines; at most {max_entries} per request")
        return read_fhir_lines([_line(n, line) for n, line in enumerate(lines, 1)], caller.timezone, facility)
    if kind not in (FHIR_JSON, "application/json"):
        raise FhirProblem(415, "not-supported", f"send {FHIR_JSON} (a Bundle) or {FHIR_NDJSON}")
    try:
        bundle = json.loads(body, parse_float=Decimal)
    except ValueError as exc:
        raise FhirProblem(400, "structure", f"the body is not JSON: {exc}") from None
    except RecursionError:
        raise FhirProblem(400, "structure", TOO_DEEP) from None
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise FhirProblem(400, "structure", "the body must be a Bundle", "Bundle.resourceType")
    if bundle.get("type") not in BUNDLE_TYPES:
        raise FhirProblem(400, "value", "Bundle.type must be batch, transaction or collection", "Bundle.type")
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise FhirProblem(400, "structure", "Bundle.entry must be a list", "Bundle.entry")
    if len(entries) > max_entries:
        raise FhirProblem(413, "too-costly", f"{len(entries)} entries; at most {max_entries} per Bundle")
    return read_fhir_bundle(bundle, caller.timezone, facility)


def _line(number: int, line: bytes) -> Any:
    try:
        return json.loads(line, parse_float=Decimal)
    except ValueError as exc:
        return Unparseable(f"line {number} is not JSON: {exc}")
    except RecursionError:
        return Unparseable(f"line {number}: {TOO_DEEP}")
