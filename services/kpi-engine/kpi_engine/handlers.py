"""What happens to a consumed batch: decode each message, then record the batch's effects at once.

Decoding is pure. A message that is not a valid event becomes a dead letter with its reason; it never
stops the consumer.
"""

from __future__ import annotations

import hashlib
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from pydantic import ValidationError

from kpi_engine.domain.messages import DeadLetter, Decoded, Message
from vr_shared.events import decode_event, event_document


def decode(message: Message) -> Decoded | DeadLetter:
    try:
        origin, event = decode_event(message.value)
        ZoneInfo(origin.timezone)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        return _dead(message, f"invalid event: {where}: {first['msg']}")
    except (ValueError, orjson.JSONDecodeError) as exc:
        return _dead(message, f"undecodable message: {exc}")
    except (ZoneInfoNotFoundError, KeyError):
        return _dead(message, "unknown tenant time zone")
    document = event_document(event)
    # Canonical form (sorted keys, defaults filled) so the same event sent twice hashes the same.
    payload_hash = hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).digest()
    key = (origin.tenant, event.source, event.id)
    return Decoded(message.partition, message.offset, origin, event, document, payload_hash, key)


def _dead(message: Message, reason: str) -> DeadLetter:
    """Keep what can be read of the envelope, so the event lookup can answer for it."""
    try:
        document = orjson.loads(message.value)
    except orjson.JSONDecodeError:
        document = None
    fields = document if isinstance(document, dict) else {}

    def text(name: str) -> str | None:
        value = fields.get(name)
        return value if isinstance(value, str) else None

    return DeadLetter(
        message.partition, message.offset, reason[:1000], text("tenant"), text("source"), text("id")
    )
