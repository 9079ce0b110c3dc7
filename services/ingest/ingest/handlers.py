"""What happens to a request's events: validate, apply intake rules, pseudonymise, publish."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from ingest import metrics
from ingest.domain.intake import IntakePolicy
from ingest.domain.pseudonyms import Pseudonymiser
from vr_shared.events import EVENT_TYPES, EventDocument, FieldError, Origin, validate_events
from vr_shared.identity import Identity


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
