"""Health, readiness and the docs/operations.md ingest metrics, observed on the running service."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import IngestUnderTest
from tests.support.examples import event
from tests.support.identity import token
from tests.support.waiting import exposed_metrics


async def _samples(ingest: IngestUnderTest) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = exposed_metrics()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_healthz_and_readyz_answer_when_the_broker_is_up(ingest: IngestUnderTest) -> None:
    assert (await ingest.client.get("/healthz")).json() == {"status": "ok"}
    ready = await ingest.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"started": "ok", "broker": "ok"}


async def test_metrics_count_events_by_type_and_outcome_and_rejections_by_reason(
    ingest: IngestUnderTest,
) -> None:
    before = await _samples(ingest)
    batch = [
        event("claim.submitted"),
        event("claim.submitted"),
        event("claim.submitted", facility="elsewhere"),
    ]
    response = await ingest.client.post("/v1/events", json=batch, headers={"X-VR-Identity": token()})
    assert response.status_code == 202
    after = await _samples(ingest)

    def delta(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert delta("vr_ingest_events_total", type="claim.submitted", outcome="accepted") == 2
    assert delta("vr_ingest_events_total", type="claim.submitted", outcome="rejected") == 1
    assert delta("vr_ingest_event_rejections_total", reason="facility_not_in_tenant") == 1
    assert delta("vr_ingest_publish_duration_seconds_count") == 1
    assert (
        delta("vr_http_requests_total", service="ingest", method="POST", route="/v1/events", status="202")
        == 1
    )
    assert (
        delta("vr_http_request_duration_seconds_count", service="ingest", method="POST", route="/v1/events")
        == 1
    )
    assert delta("vr_ingest_request_events_sum") == 3


async def test_refused_requests_are_counted_by_reason(ingest: IngestUnderTest) -> None:
    before = await _samples(ingest)
    await ingest.client.post("/v1/events", json=event("claim.submitted"))
    after = await _samples(ingest)
    key = ("vr_ingest_request_rejections_total", frozenset({("reason", "unauthenticated")}))
    assert after[key] - before.get(key, 0.0) == 1
