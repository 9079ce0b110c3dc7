"""What the engine consumes: a message as it comes off the topic, and what decoding makes of it — an
event to record, or a dead letter with its reason."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vr_shared.events import Event, Origin


@dataclass(frozen=True, slots=True)
class Message:
    partition: int
    offset: int
    value: bytes


@dataclass(frozen=True, slots=True)
class Decoded:
    partition: int
    offset: int
    origin: Origin
    event: Event
    document: dict[str, Any]
    payload_hash: bytes
    key: tuple[str, str, str]  # tenant, source, id: what "the same event" means


@dataclass(frozen=True, slots=True)
class DeadLetter:
    partition: int
    offset: int
    reason: str
    tenant: str | None = None
    source: str | None = None
    id: str | None = None
