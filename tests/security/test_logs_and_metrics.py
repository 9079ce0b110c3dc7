"""Logs never carry a patient identifier, whatever shape it takes in a message — with spaces, escaped
quotes, inside JSON inside a string, or echoed by pydantic as `input_value`; `/metrics` is served on its
own port, never beside the API (docs/security.md)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest
from pydantic import BaseModel, ValidationError, constr

from devstack.processes import service_process, settings_environment
from tests.integration.gateway.conftest import drop_schemas, gateway_settings
from tests.support.infrastructure import Infrastructure
from vr_shared.logging import JsonFormatter

NAME = "Jane Q Doe 1975"  # a patient reference with spaces: the redaction used to stop at the first


class _Event(BaseModel):
    patient_ref: constr(max_length=4)  # type: ignore[valid-type]


def _pydantic_error() -> str:
    try:
        _Event(patient_ref=NAME)
    except ValidationError as exc:
        return str(exc)
    raise AssertionError("no error")


def _logged(message: str) -> str:
    record = logging.LogRecord("t", logging.WARNING, __file__, 1, message, None, None)
    line = JsonFormatter("test").format(record)
    json.loads(line)
    return line


@pytest.mark.parametrize(
    "message",
    [
        f'payload {{"patient_ref": "{NAME}", "type": "x"}}',
        f"payload {{'encounter_ref': '{NAME}'}}",
        f'payload {{"patient_ref": "{NAME} \\" with an escaped quote"}}',
        f'body was "{{\\"patient_ref\\": \\"{NAME}\\"}}"',  # JSON inside a JSON string
        f"refused: input_value='{NAME}', input_type=str",
        _pydantic_error(),
    ],
)
def test_identifiers_never_reach_a_log_line(message: str) -> None:
    line = _logged(message)
    for fragment in ("Jane", "Doe", "1975", "escaped quote"):
        assert fragment not in line, line
    assert "[redacted]" in line


async def test_metrics_are_served_on_their_own_port_only(
    infrastructure: Infrastructure, services: dict[str, str], tmp_path: Path
) -> None:
    settings = gateway_settings(infrastructure, services)
    with service_process("gateway", settings_environment(settings), log_path=tmp_path / "gw.log") as gateway:
        async with httpx.AsyncClient() as client:
            public = await client.get(f"{gateway}/metrics")
            internal = await client.get(f"{gateway.metrics}/metrics")
    await drop_schemas(infrastructure, settings.db_schema)
    assert public.status_code == 404
    assert internal.status_code == 200 and "vr_gateway_requests_total" in internal.text
