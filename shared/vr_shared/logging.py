"""JSON logs that can never print a raw patient or encounter identifier (docs/security.md,
docs/operations.md).

Redaction happens in the formatter, the last step before output, so it holds whatever a caller
passes: structured `extra` fields, `%`-style arguments, or identifiers already inside the message.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

REDACTED = "[redacted]"
SENSITIVE_KEYS = frozenset(
    {
        "patient_ref",
        "encounter_ref",
        "authorization",
        "api_key",
        "key",
        "body",
        "x-vr-identity",
        "identity_token",
        "input_value",
    }
)
# `patient_ref: X`, `"encounter_ref": "X Y"`, `patient_ref=X`, `\"patient_ref\": \"X\"` (JSON inside a
# string) inside free text, and pydantic's `input_value='…'` (a refused value echoed in an error). A
# quoted value is redacted to its closing quote, spaces and escaped quotes included.
_INLINE = re.compile(
    r"""(?P<k>\\?["']?(?:patient_ref|encounter_ref|input_value)\\?["']?\s*[:=]\s*)"""
    r"""(?P<v>\\"(?:(?!\\").)*\\"|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^"',}\s\)\]]*)""",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",
}


def redact(value: Any) -> Any:
    """A copy of `value` with sensitive keys and inline identifiers replaced."""
    if isinstance(value, Mapping):
        return {k: (REDACTED if str(k).lower() in SENSITIVE_KEYS else redact(v)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, int | float | bool) or value is None:
        return value
    return redact_text(str(value))


def _redacted_value(match: re.Match[str]) -> str:
    value = match["v"]
    quote = next((q for q in ('\\"', '"', "'") if len(value) >= 2 * len(q) and value.startswith(q)), "")
    return f"{match['k']}{quote}{REDACTED}{quote}"


def redact_text(text: str) -> str:
    text = _INLINE.sub(_redacted_value, text)
    return _BEARER.sub(lambda m: f"{m[1]}{REDACTED}", text)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        if isinstance(record.args, Mapping):
            args: Any = redact(record.args)
        elif record.args:
            args = tuple(redact(a) for a in record.args)
        else:
            args = record.args
        message = record.msg % args if args else str(record.msg)
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "message": redact_text(message),
        }
        if (rid := request_id.get()) is not None:
            entry["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = REDACTED if key.lower() in SENSITIVE_KEYS else redact(value)
        if record.exc_info:
            entry["exception"] = redact_text(self.formatException(record.exc_info))
        return orjson.dumps(entry, default=str).decode()


def configure_logging(service: str, level: str = "INFO") -> None:
    """Route every logger (uvicorn and aiokafka included) through the JSON formatter on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Request lines are logged by our own middleware (with route and request id, without bodies).
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
