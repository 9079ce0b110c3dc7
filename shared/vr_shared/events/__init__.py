"""The event contract of docs/events.md: catalogue models, validation, topic message codec."""

from vr_shared.events.catalogue import EVENT_CLASSES, EVENT_TYPES, PSEUDONYMISED_FIELDS, Event
from vr_shared.events.codec import (
    EventDocument,
    Origin,
    decode_event,
    encode_event,
    event_document,
    message_headers,
    message_key,
)
from vr_shared.events.validation import FieldError, json_path, validate_event, validate_events

__all__ = [
    "EVENT_CLASSES",
    "EVENT_TYPES",
    "PSEUDONYMISED_FIELDS",
    "Event",
    "EventDocument",
    "FieldError",
    "Origin",
    "decode_event",
    "encode_event",
    "event_document",
    "json_path",
    "message_headers",
    "message_key",
    "validate_event",
    "validate_events",
]
