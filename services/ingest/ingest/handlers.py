"""What happens to a request's events: validate, apply intake rules, pseudonymise, publish."""

from __future__ import annotations

import logging
import traceback
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import hl7
import orjson

from ingest import metrics
from ingest.domain import hl7v2
from ingest.domain.er7 import DEFAULT, Delimiters, header_of
from ingest.domain.fhir import Issue, Mapped, information, map_resource, operation_outcome
from ingest.domain.fhir_references import MAX_URL, BundleIndex
from ingest.domain.hl7v2 import (
    Hl7Error,
    Hl7Events,
    acknowledgement,
    acknowledgement_without_message,
    map_message,
)
from ingest.domain.intake import IntakePolicy
from ingest.domain.pseudonyms import Pseudonymiser
from vr_shared.events import EVENT_TYPES, EventDocument, FieldError, Origin, validate_events
from vr_shared.identity import Identity

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Unparseable:
    """An item of the body that is not JSON (an NDJSON line); it becomes a rejected event."""

    message: str


@dataclass(frozen=True, slots=True)
class ParsedBody:
    items: list[Any]
    """Each event of the body (an `Unparseable` for an NDJSON line that is not JSON)."""
    json_array: bytes
    """The parseable items as one JSON array, for validation straight from bytes."""


@dataclass(slots=True)
class IntakeReport:
    """Per-event results in request order, JSON-ready: `{"index", "id", "status", "errors"?}`."""

    results: list[dict[str, Any]]
    accepted: int
    rejected: int

    def as_json(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "rejected": self.rejected, "results": self.results}


class EventPublisher(Protocol):
    async def publish(self, origin: Origin, documents: Sequence[EventDocument]) -> None: ...


@dataclass(frozen=True, slots=True)
class Intake:
    policy: IntakePolicy
    pseudonymiser: Pseudonymiser
    publisher: EventPublisher

    async def ingest(self, body: ParsedBody, caller: Identity, now: datetime) -> IntakeReport:
        """Publishes the valid events (raises BrokerUnavailable if they are not all acknowledged).

        What is published is each valid item as sent, with its identifiers pseudonymised: the schema is
        strict about JSON kinds, so a valid item already is the event's canonical JSON form.
        """
        results, accepted = self._screen(body, caller, now)
        if accepted:
            pseudonymised = [self.pseudonymiser.pseudonymise(caller.tenant, d) for d in accepted]
            try:
                await self.publisher.publish(Origin(caller.tenant, caller.timezone), pseudonymised)
            except Exception:
                _count(accepted, "unavailable")
                raise
            _count(accepted, "accepted")
        return IntakeReport(results, accepted=len(accepted), rejected=len(results) - len(accepted))

    def _screen(
        self, body: ParsedBody, caller: Identity, now: datetime
    ) -> tuple[list[dict[str, Any]], list[EventDocument]]:
        items = body.items
        parseable = [i for i, item in enumerate(items) if not isinstance(item, Unparseable)]
        outcomes = validate_events([items[i] for i in parseable], json_array=body.json_array)
        validated = dict(zip(parseable, outcomes, strict=True))
        results: list[dict[str, Any]] = []
        accepted: list[EventDocument] = []
        latest_allowed = self.policy.latest_allowed(now)
        for index, item in enumerate(items):
            outcome = validated.get(index)
            if isinstance(item, Unparseable):
                errors: Sequence[FieldError] = [FieldError("$", item.message, "json_invalid")]
            elif isinstance(outcome, list):
                errors = outcome
            else:
                assert outcome is not None
                errors = self.policy.errors_for(outcome, caller, latest_allowed)
            if errors:
                results.append(_rejected(index, item, errors))
            else:
                results.append({"index": index, "id": item["id"], "status": "accepted"})
                accepted.append(item)
        return results, accepted


def _rejected(index: int, item: Any, errors: Sequence[FieldError]) -> dict[str, Any]:
    metrics.EVENTS.labels(_raw_type(item), "rejected").inc()
    metrics.EVENT_REJECTIONS.labels(errors[0].code).inc()
    return {
        "index": index,
        "id": _raw_id(item),
        "status": "rejected",
        "errors": [e.as_json() for e in errors],
    }


def _count(documents: Sequence[EventDocument], outcome: str) -> None:
    for type_, count in Counter(d["type"] for d in documents).items():
        metrics.EVENTS.labels(type_, outcome).inc(count)


def _raw_id(item: Any) -> str | None:
    value = item.get("id") if isinstance(item, dict) else None
    return value if isinstance(value, str) else None


def _raw_type(item: Any) -> str:
    value = item.get("type") if isinstance(item, dict) else None
    return value if isinstance(value, str) and value in EVENT_TYPES else "invalid"  # bounded label set


# --- HL7 v2 (docs/interop.md) --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hl7Message:
    """One message of a request, parsed, with the events it states (or why it states none)."""

    message: hl7.Message | None  # None: not a message python-hl7 could parse
    mapped: Hl7Events
    delimiters: Delimiters = DEFAULT  # of an unparsed message, as far as they could be read

    def ack(self, code: str, error: Hl7Error | None = None, text: str = "") -> str:
        if self.message is None:
            return acknowledgement_without_message(code, error, self.mapped.control_id, self.delimiters)
        return acknowledgement(self.message, code, error, text)


def read_hl7(texts: Sequence[str], zone: str, facility: str | None) -> list[Hl7Message]:
    return [_read_one(text, zone, facility) for text in texts]


def _read_one(text: str, zone: str, facility: str | None) -> Hl7Message:
    try:
        message = hl7.parse(text)
    except Exception:
        delimiters, control_id = header_of(text)
        error = Hl7Error("MSH^1^1", hl7v2.DATA_TYPE_ERROR, "not an HL7 v2 message (ER7)")
        return Hl7Message(None, Hl7Events(control_id, error=error), delimiters)
    try:
        return Hl7Message(message, map_message(message, zone, facility))
    except Exception as exc:
        return Hl7Message(message, _unmappable(message, exc))


def _unmappable(message: hl7.Message, exc: Exception) -> Hl7Events:
    """A fault of the mapping on this message answers for it alone, never for the request's others. It
    is deterministic — the same message fails the same way — so AE (do not send it again as it is: the
    engine keeps it as errored while its queue moves on), never AR, which would have it sent for ever.
    Logged by where it failed, never by what the message says (a patient's data)."""
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    log.error(
        "an HL7 v2 message could not be mapped: %s at %s:%s",
        type(exc).__name__,
        where.filename if where else "?",
        where.lineno if where else "?",
    )
    why = "the platform could not map this message (a fault of the platform, logged); it is not stored"
    return Hl7Events(
        hl7v2.message_control_id(message), error=Hl7Error("MSH^1^10", hl7v2.APPLICATION_ERROR, why)
    )


async def ingest_hl7(
    intake: Intake, messages: Sequence[Hl7Message], caller: Identity, now: datetime
) -> list[str]:
    """Each message's ACK. The events go the way every event goes (raises like `Intake.ingest` when
    the broker does not acknowledge: the caller answers AR to each message that had events)."""
    results = await _ingest_grouped(intake, [m.mapped.events for m in messages], caller, now)
    return [_hl7_ack(m, r) for m, r in zip(messages, results, strict=True)]


async def _ingest_grouped(
    intake: Intake, groups: Sequence[Sequence[dict[str, Any]]], caller: Identity, now: datetime
) -> list[list[dict[str, Any]]]:
    """The events of several messages or resources as one intake, and each group's per-event results
    back in its place (a message or resource answers for the events it stated)."""
    items = [event for group in groups for event in group]
    results: list[list[dict[str, Any]]] = [[] for _ in groups]
    if items:
        report = await intake.ingest(ParsedBody(items, orjson.dumps(items)), caller, now)
        owners = [i for i, group in enumerate(groups) for _ in group]
        for owner, result in zip(owners, report.results, strict=True):
            results[owner].append(result)
    return results


def broker_unavailable_acks(messages: Sequence[Hl7Message]) -> list[str]:
    """AR (send again) for every message that had events — never AA for what was not stored."""
    error = Hl7Error(
        "MSH^1^10", hl7v2.APPLICATION_ERROR, "the platform could not store it now; send it again"
    )
    return [m.ack("AR", error) if m.mapped.events else _hl7_ack(m, []) for m in messages]


def _hl7_ack(message: Hl7Message, results: list[dict[str, Any]]) -> str:
    mapped = message.mapped
    if mapped.error is not None:
        return message.ack("AE", mapped.error)
    for result in results:
        if result["status"] == "rejected":
            # Refused by the catalogue or the intake rules (an unknown facility, a time in the future):
            # the content is at fault, so AE — sent again as it is, it would be refused again.
            first = result["errors"][0]
            source = mapped.locations.get(first["path"], hl7v2.MSH_10)
            return message.ack("AE", hl7v2.refusal(source, first["code"], first["message"]))
    return message.ack("AA", text=mapped.note or "")


# --- FHIR R4 (docs/interop.md) ---------------------------------------------------------------------------


def read_fhir_bundle(bundle: Mapping[str, Any], zone: str, facility: str | None) -> list[Mapped]:
    """Each entry of a checked Bundle (batch, transaction or collection), mapped in order."""
    entries = bundle.get("entry") or []
    index = BundleIndex(e for e in entries if isinstance(e, Mapping))
    mapped = []
    for number, entry in enumerate(entries):
        path = f"Bundle.entry[{number}].resource"
        resource = entry.get("resource") if isinstance(entry, Mapping) else None
        if not isinstance(resource, Mapping):
            mapped.append(
                Mapped(issues=[Issue("required", "entry.resource is required", path)], status="422")
            )
            continue
        full_url = entry.get("fullUrl")
        if isinstance(full_url, str) and len(full_url) > MAX_URL:  # not indexed: refused, never guessed
            too_long = f"fullUrl has {len(full_url)} characters; at most {MAX_URL}"
            where = f"Bundle.entry[{number}].fullUrl"
            mapped.append(Mapped(issues=[Issue("too-long", too_long, where)], status="422"))
            continue
        mapped.append(map_resource(resource, index, zone, facility, path))
    return mapped


def read_fhir_lines(resources: Sequence[Any], zone: str, facility: str | None) -> list[Mapped]:
    """Bulk Data NDJSON: each line a resource on its own (references do not resolve across lines)."""
    index = BundleIndex()
    mapped = []
    for resource in resources:
        if isinstance(resource, Unparseable):
            mapped.append(Mapped(issues=[Issue("structure", resource.message, "")], status="400"))
        elif not isinstance(resource, Mapping):
            mapped.append(
                Mapped(issues=[Issue("structure", "a line must be one resource", "")], status="400")
            )
        else:
            mapped.append(
                map_resource(resource, index, zone, facility, str(resource.get("resourceType", "")))
            )
    return mapped


async def ingest_fhir(
    intake: Intake, mapped: Sequence[Mapped], caller: Identity, now: datetime
) -> list[dict[str, Any]]:
    """The batch-response entries, in request order. The events go the way every event goes (raises
    like `Intake.ingest` when the broker does not acknowledge)."""
    results = await _ingest_grouped(intake, [m.events for m in mapped], caller, now)
    return [_fhir_response(m, r) for m, r in zip(mapped, results, strict=True)]


def _fhir_response(mapped: Mapped, results: list[dict[str, Any]]) -> dict[str, Any]:
    if mapped.issues:
        return {"response": {"status": mapped.status, "outcome": operation_outcome(mapped.issues)}}
    refused = [
        Issue("invalid", error["message"], mapped.locations.get(error["path"], mapped.locations.get("$", "")))
        for result in results
        if result["status"] == "rejected"
        for error in result["errors"]
    ]
    if refused:
        return {"response": {"status": "422", "outcome": operation_outcome(refused)}}
    if results:
        return {"response": {"status": "202 Accepted", "location": f"/v1/events/fhir/{results[0]['id']}"}}
    return {"response": {"status": "200 OK", "outcome": information(mapped.note or "understood")}}
