"""Requests refused as a whole: size limits, bad bodies, no identity — each a clear problem+json."""

from __future__ import annotations

import time

import orjson
import pytest

from tests.integration.conftest import IngestUnderTest
from tests.support.examples import event
from tests.support.identity import token
from vr_shared.secrets import new_key_pair

PROBLEM = "application/problem+json"


def _auth(content_type: str = "application/json") -> dict[str, str]:
    return {"X-VR-Identity": token(), "Content-Type": content_type}


async def test_more_than_1000_events_is_413_problem(ingest: IngestUnderTest) -> None:
    body = orjson.dumps([event("cost.incurred") for _ in range(1001)])
    response = await ingest.client.post("/v1/events", content=body, headers=_auth())
    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["status"] == 413 and problem["type"] == "/problems/payload-too-large"
    assert "1001 events" in problem["detail"] and "1000" in problem["detail"]


async def test_more_than_5_mb_is_413_problem(ingest: IngestUnderTest) -> None:
    padding = "x" * (5 * 1024 * 1024)
    body = orjson.dumps([{**event("cost.incurred"), "padding": padding}])
    response = await ingest.client.post("/v1/events", content=body, headers=_auth())
    assert response.status_code == 413
    assert response.json()["detail"].endswith(f"the limit is {5 * 1024 * 1024} bytes")


async def test_all_rejected_is_422_naming_each_event_index_and_path(ingest: IngestUnderTest) -> None:
    batch = [event("claim.submitted", amount=10), event("system.outage", planned="no")]
    response = await ingest.client.post("/v1/events", json=batch, headers={"X-VR-Identity": token()})
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["title"] == "No event accepted" and problem["type"] == "/problems/invalid-events"
    assert (problem["accepted"], problem["rejected"]) == (0, 2)
    assert [(e["index"], e["path"]) for e in problem["errors"]] == [
        (0, "$.data.amount"),
        (1, "$.data.planned"),
    ]
    assert all(e["message"] and e["code"] for e in problem["errors"])
    assert [r["status"] for r in problem["results"]] == ["rejected", "rejected"]


async def test_ndjson_line_that_is_not_json_is_rejected_alone(ingest: IngestUnderTest) -> None:
    body = (
        orjson.dumps(event("cost.incurred")) + b"\n{broken\n" + orjson.dumps(event("cost.incurred")) + b"\n"
    )
    response = await ingest.client.post("/v1/events", content=body, headers=_auth("application/x-ndjson"))
    assert response.status_code == 202
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["accepted", "rejected", "accepted"]
    assert (
        results[1]["errors"][0]["code"] == "json_invalid" and "line 2" in results[1]["errors"][0]["message"]
    )


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"[]", "application/json", 422),
        (b"id,source\n1,x", "text/csv", 415),
    ],
)
async def test_bodies_without_events_are_refused_with_a_problem(
    ingest: IngestUnderTest, body: bytes, content_type: str, status: int
) -> None:
    response = await ingest.client.post("/v1/events", content=body, headers=_auth(content_type))
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM and response.json()["status"] == status


@pytest.mark.parametrize(
    "identity",
    [
        None,
        "garbage",
        token(private_key=new_key_pair()[0]),
        token(ttl_seconds=30, now=time.time() - 600),
    ],
)
async def test_requests_without_a_valid_gateway_identity_are_401(
    ingest: IngestUnderTest, identity: str | None
) -> None:
    headers = {"X-VR-Identity": identity} if identity else {}
    response = await ingest.client.post("/v1/events", json=event("cost.incurred"), headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM and response.json()["title"] == "Unauthenticated"


@pytest.mark.parametrize("role", ["billing", "ops", "tenant_admin"])
async def test_roles_that_may_not_write_events_are_403(ingest: IngestUnderTest, role: str) -> None:
    response = await ingest.client.post(
        "/v1/events", json=event("cost.incurred"), headers={"X-VR-Identity": token(role=role)}
    )  # type: ignore[arg-type]
    assert response.status_code == 403


async def test_request_id_is_echoed_or_generated(ingest: IngestUnderTest) -> None:
    given = await ingest.client.get("/healthz", headers={"X-Request-ID": "trace-123"})
    made = await ingest.client.get("/healthz")
    assert given.headers["x-request-id"] == "trace-123"
    assert len(made.headers["x-request-id"]) == 32


async def test_an_unexpected_error_is_a_problem_without_details(
    ingest: IngestUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ingest.handlers import Intake

    async def fail(*_: object) -> None:
        raise RuntimeError("patient_ref=MRN-SECRET exploded")

    monkeypatch.setattr(Intake, "ingest", fail)
    # The in-process ASGI transport re-raises app errors by default; a real server answers them.
    monkeypatch.setattr(ingest.client._transport, "raise_app_exceptions", False)
    response = await ingest.client.post("/v1/events", json=event("cost.incurred"), headers=_auth())
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM
    assert "MRN-SECRET" not in response.text and response.json()["title"] == "Internal error"
