"""How an event is written to and read from `vr.events.v1`.

The message value is the event as a CloudEvents 1.0 structured JSON document with two extension
attributes taken from the caller's signed identity, never from the request body: `tenant`, and
`tenanttz`, the tenant's IANA time zone (KPIs are bucketed by local day, and a consumer has no caller
to ask). Headers repeat the routing attributes so that a consumer can route or dead-letter without
parsing the body.

## The message key: tenant + patient pseudonym, else tenant + facility

Readmissions join one patient's stays across all facilities of a tenant. Keying patient events by
(tenant, patient pseudonym) puts every event of a patient in one partition, so one consumer sees a
patient's admissions and discharges in order and two engine instances never race on the same
patient's readmission state. Events without a patient (outages, claims, payments, A/R, costs,
medication and ADE events, retractions) are keyed by (tenant, facility): the per-facility aggregates
they feed (uptime interval merging, latest A/R snapshot) stay in one partition, and a tenant's load
spreads over partitions by facility. Retractions name an earlier event whose key ingest does not know;
the engine must therefore make retract-versus-event races safe with its own locking (the retraction may
be consumed before or after the event, by another instance).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from vr_shared.events.catalogue import EVENT_TYPES, Event
from vr_shared.events.validation import validate_event

CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"

EventDocument = Mapping[str, Any]
"""An event in its JSON form: a validated request item as sent, or `event_document(model)`."""


def event_document(event: Event) -> dict[str, Any]:
    return event.model_dump(mode="json", exclude_none=True)


def message_key(tenant: str, document: EventDocument) -> bytes:
    patient = document["data"].get("patient_ref")
    if patient is not None:
        return f"{tenant}|p|{patient}".encode()
    return f"{tenant}|f|{document['facility']}".encode()


def message_headers(tenant: str, document: EventDocument) -> list[tuple[str, bytes]]:
    """Content type (CloudEvents structured mode), event type and tenant: enough to route or dead-letter
    a message without parsing it. Id and source are in the body."""
    return [_CONTENT_TYPE_HEADER, _TYPE_HEADERS[document["type"]], _tenant_header(tenant)]


@functools.lru_cache(maxsize=4096)
def _tenant_header(tenant: str) -> tuple[str, bytes]:
    return ("vr_tenant", tenant.encode())


@dataclass(frozen=True, slots=True)
class Origin:
    """Whose event it is and in which calendar it counts."""

    tenant: str
    timezone: str = "UTC"


def encode_event(origin: Origin, document: EventDocument) -> bytes:
    """The message value. `document` must already be valid: this is the last step before the broker."""
    return orjson.dumps(
        {"specversion": "1.0", **document, "tenant": origin.tenant, "tenanttz": origin.timezone}
    )


def decode_event(value: bytes) -> tuple[Origin, Event]:
    """Inverse of `encode_event`; raises ValueError / ValidationError for a malformed message."""
    document: Any = orjson.loads(value)
    if not isinstance(document, dict) or not isinstance(document.get("tenant"), str):
        raise ValueError("message is not an event document with a tenant attribute")
    tenant, timezone = document.pop("tenant"), document.pop("tenanttz", "UTC")
    if not isinstance(timezone, str):
        raise ValueError("tenanttz must be an IANA time zone name")
    return Origin(tenant, timezone), validate_event(document)


def header_value(headers: Sequence[tuple[str, bytes]], name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode()
    return None


_CONTENT_TYPE_HEADER = ("content-type", CONTENT_TYPE.encode())
_TYPE_HEADERS = {type_: ("ce_type", type_.encode()) for type_ in EVENT_TYPES}
