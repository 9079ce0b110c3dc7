"""FHIR R4 through ingest against the real broker (docs/interop.md): what a Bundle states lands on the
topic, and bodies no parser should be asked to hold answer 400, never 500."""

from __future__ import annotations

import json
import uuid
from typing import Any

import orjson
import pytest

from tests.integration.conftest import IngestUnderTest
from tests.support.identity import token
from tests.support.infrastructure import Infrastructure
from tests.support.kafka import read_topic
from vr_shared.events import decode_event

FHIR_JSON = "application/fhir+json"
FHIR_NDJSON = "application/fhir+ndjson"
DEPTH = 100_000  # far beyond any parser's recursion limit


def _headers(content_type: str) -> dict[str, str]:
    return {"X-VR-Identity": token(), "Content-Type": content_type}


def _encounter(id_: str, status: str) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": id_,
        "identifier": [{"system": "urn:hospital", "value": id_}],
        "status": status,
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": {"reference": "Patient/p1"},
        "period": {"start": "2026-03-01T08:00:00-05:00", "end": "2026-03-04T11:30:00-05:00"},
        "serviceProvider": {"reference": "Organization?identifier=urn:npi|asheville-main"},
    }


def _bundle(*resources: dict[str, Any]) -> bytes:
    entries = [{"resource": r} for r in resources]
    return json.dumps({"resourceType": "Bundle", "type": "batch", "entry": entries}).encode()


async def test_an_encounter_entered_in_error_after_finished_retracts_its_admission_and_discharge(
    infrastructure: Infrastructure, ingest: IngestUnderTest
) -> None:
    id_ = f"enc-{uuid.uuid4().hex[:10]}"
    for status in ("finished", "entered-in-error"):
        answer = await ingest.client.post(
            "/v1/fhir", content=_bundle(_encounter(id_, status)), headers=_headers(FHIR_JSON)
        )
        assert answer.status_code == 200, answer.text
        assert [e["response"]["status"] for e in answer.json()["entry"]] == ["202 Accepted"]

    landed = await read_topic(infrastructure.kafka_bootstrap_servers, ingest.settings.events_topic, expect=4)
    published = [decode_event(m.value)[1] for m in landed]
    mine = {e.type: e for e in published if e.id.startswith(f"Encounter:{id_}:")}
    assert sorted(mine) == [
        "encounter.admission_cancelled",
        "encounter.admitted",
        "encounter.discharge_cancelled",
        "encounter.discharged",
    ]
    assert mine["encounter.admission_cancelled"].data.admitted_at == mine["encounter.admitted"].time
    assert mine["encounter.discharge_cancelled"].data.discharged_at == mine["encounter.discharged"].time
    assert (
        mine["encounter.discharge_cancelled"].data.encounter_ref
        == mine["encounter.discharged"].data.encounter_ref
    )


async def test_a_planned_encounter_is_understood_and_not_an_admission(ingest: IngestUnderTest) -> None:
    answer = await ingest.client.post(
        "/v1/fhir", content=_bundle(_encounter("enc-planned", "planned")), headers=_headers(FHIR_JSON)
    )
    (entry,) = answer.json()["entry"]
    assert entry["response"]["status"] == "200 OK"
    assert (
        entry["response"]["outcome"]["issue"][0]["diagnostics"] == "an Encounter planned is not an admission"
    )


async def test_a_bundle_nested_100000_deep_is_400_with_an_operation_outcome(ingest: IngestUnderTest) -> None:
    body = b'{"resourceType": "Bundle", "type": "batch", "entry": ' + b"[" * DEPTH + b"]" * DEPTH + b"}"
    answer = await ingest.client.post("/v1/fhir", content=body, headers=_headers(FHIR_JSON))
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith(FHIR_JSON)
    (issue,) = answer.json()["issue"]
    assert (issue["severity"], issue["code"]) == ("error", "structure")
    assert "too deeply" in issue["diagnostics"]


async def test_an_ndjson_line_nested_100000_deep_is_that_lines_400_alone(ingest: IngestUnderTest) -> None:
    good = json.dumps(_encounter("enc-ndjson-fine", "in-progress")).encode()
    body = good + b"\n" + b"[" * DEPTH + b"]" * DEPTH + b"\n"
    answer = await ingest.client.post("/v1/fhir", content=body, headers=_headers(FHIR_NDJSON))
    assert answer.status_code == 200, answer.text
    first, second = answer.json()["entry"]
    assert first["response"]["status"] == "202 Accepted"
    assert second["response"]["status"] == "400"
    assert "line 2" in second["response"]["outcome"]["issue"][0]["diagnostics"]


@pytest.mark.parametrize("depth", [DEPTH, 1_000])  # beyond and within the JSON parser's own depth limit
async def test_events_nested_deep_are_refused_as_a_problem_never_a_500(
    ingest: IngestUnderTest, depth: int
) -> None:
    nested = b"[" * depth + b"]" * depth
    body = b'[{"id": "deep", "data": ' + nested + b"}]"
    answer = await ingest.client.post("/v1/events", content=body, headers=_headers("application/json"))
    assert answer.status_code in (400, 422), answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert orjson.loads(answer.content)["status"] == answer.status_code
