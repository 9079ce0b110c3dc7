from __future__ import annotations

import json
import logging

import pytest

from vr_shared.logging import JsonFormatter

RAW = "MRN-8675309"


def _format(msg: str, *args: object, exc: bool = False, **extra: object) -> str:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, msg, args or None, None)
    if exc:
        try:
            raise ValueError(f"bad patient_ref={RAW}")
        except ValueError:
            import sys

            record.exc_info = sys.exc_info()
    record.__dict__.update(extra)
    line = JsonFormatter("test").format(record)
    json.loads(line)  # every line is one JSON document
    return line


@pytest.mark.parametrize(
    "line",
    [
        _format("event received", event={"data": {"patient_ref": RAW, "encounter_ref": "ENC-77"}}),
        _format("event %s", {"patient_ref": RAW}),
        _format("event %(patient_ref)s", {"patient_ref": RAW}),
        _format(f"payload was {{'patient_ref': '{RAW}'}}"),
        _format(f'payload was {{"encounter_ref": "{RAW}"}}'),
        _format(f"looked up patient_ref={RAW} twice"),
        _format("items %s", [{"patient_ref": RAW}]),
        _format("failed", exc=True),
        _format("ok", patient_ref=RAW),
    ],
)
def test_raw_patient_and_encounter_identifiers_never_reach_the_log(line: str) -> None:
    assert RAW not in line
    assert "[redacted]" in line


def test_bearer_tokens_are_redacted() -> None:
    assert "sk_live_abcdef" not in _format("auth header Bearer sk_live_abcdef")


def test_ordinary_fields_are_kept() -> None:
    line = json.loads(_format("published %d events", 5, topic="vr.events.v1"))
    assert line["message"] == "published 5 events" and line["topic"] == "vr.events.v1"
