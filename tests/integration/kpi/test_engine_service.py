"""Ingest → broker → KPI engine → query API, all real, in one test process."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client import generate_latest
from sqlalchemy import text

from kpi_engine.config import Settings as EngineSettings
from kpi_engine.entrypoints.app import create_app as create_engine_app
from tests.integration.conftest import IngestUnderTest, ingest_settings, running_ingest
from tests.support.examples import event
from tests.support.identity import GATEWAY_PUBLIC_KEY, SETTLEMENT_PUBLIC_KEY, token
from tests.support.infrastructure import Infrastructure
from tests.support.kafka import read_topic
from tests.support.waiting import eventually, metric_value
from vr_shared.db import create_engine


@dataclass
class Stack:
    ingest: IngestUnderTest
    engine: httpx.AsyncClient
    settings: EngineSettings


def engine_settings(infra: Infrastructure, events_topic: str) -> EngineSettings:
    suffix = uuid.uuid4().hex[:10]
    return EngineSettings.model_validate(
        {
            "kafka_bootstrap_servers": infra.kafka_bootstrap_servers,
            "database_url": infra.database_url,
            "identity_public_key": GATEWAY_PUBLIC_KEY,
            "settlement_public_key": SETTLEMENT_PUBLIC_KEY,
            "db_schema": f"kpi_e2e_{suffix}",
            "events_topic": events_topic,
            "dead_letter_topic": f"test.dlq.{suffix}",
            "updates_topic": f"test.updates.{suffix}",
            "consumer_group": f"test-engine-{suffix}",
            "session_timeout_ms": 3000,
        }
    )


@pytest.fixture
async def stack(infrastructure: Infrastructure) -> AsyncIterator[Stack]:
    ingest_config = ingest_settings(infrastructure.kafka_bootstrap_servers)
    settings = engine_settings(infrastructure, ingest_config.events_topic)
    app = create_engine_app(settings)
    async for ingest in running_ingest(ingest_config):
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://kpi-engine") as client:
                yield Stack(ingest, client, settings)
    admin = create_engine(infrastructure.database_url)
    async with admin.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA IF EXISTS "{settings.db_schema}" CASCADE'))
    await admin.dispose()


async def test_events_posted_to_ingest_become_kpi_values(stack: Stack) -> None:
    batch = [
        event("claim.submitted", time="2026-01-03T10:00:00-05:00", clean=True),
        event("claim.submitted", time="2026-01-03T11:00:00-05:00", clean=False),
        event("claim.submitted", time="2026-01-20T11:00:00-05:00", clean=True, facility="mission-west"),
    ]
    posted = await stack.ingest.client.post("/v1/events", json=batch, headers={"X-VR-Identity": token()})
    assert posted.status_code == 202
    headers = {"X-VR-Identity": token(role="ops")}

    async def january() -> dict[str, Any]:
        response = await stack.engine.get(
            "/v1/kpis/clean_claim_rate/values",
            headers=headers,
            params={
                "facility": ["asheville-main", "mission-west"],
                "from": "2026-01-01",
                "to": "2026-02-01",
                "granularity": "month",
            },
        )
        assert response.status_code == 200, response.text
        return response.json()

    body = await eventually(january, lambda b: b["values"][0]["denominator"] == "3")
    assert body["kpi"] == "clean_claim_rate" and body["granularity"] == "month"
    [month] = body["values"]
    assert (month["numerator"], month["denominator"], month["sample_size"]) == ("2", "3", "3")
    assert month["value"].startswith("0.6666666") and month["status"] == "mature"
    assert month["start"] == "2026-01-01T00:00:00-05:00" and month["end"] == "2026-02-01T00:00:00-05:00"

    lookup = await stack.engine.get(
        f"/v1/events/{batch[0]['source']}/{batch[0]['id']}", headers={"X-VR-Identity": token()}
    )
    assert lookup.status_code == 200 and lookup.json()["status"] == "stored"


async def test_many_readings_in_one_request_match_the_values_endpoint(stack: Stack) -> None:
    batch = [
        event("claim.submitted", time="2026-04-03T10:00:00-04:00", clean=True),
        event("claim.submitted", time="2026-05-03T10:00:00-04:00", clean=False),
        event(
            "system.outage",
            time="2026-04-04T02:00:00-04:00",
            started_at="2026-04-04T01:00:00-04:00",
            ended_at="2026-04-04T02:00:00-04:00",
        ),
    ]
    posted = await stack.ingest.client.post("/v1/events", json=batch, headers={"X-VR-Identity": token()})
    assert posted.status_code == 202
    headers = {"X-VR-Identity": token(role="ops")}
    body = {
        "facility": ["asheville-main"],
        "readings": [
            {"kpi": "clean_claim_rate", "from": "2026-04-01", "to": "2026-06-01"},
            {"kpi": "uptime_pct", "from": "2026-04-01", "to": "2026-05-01", "dimension": "ehr"},
            {"kpi": "clean_claim_rate", "from": "2026-05-01", "to": "2026-06-01"},
        ],
    }

    async def read() -> dict[str, Any]:
        response = await stack.engine.post("/v1/kpis/readings", json=body, headers=headers)
        assert response.status_code == 200, response.text
        return response.json()

    answer = await eventually(read, lambda a: a["readings"][1]["sample_size"] == "1")
    both, april_uptime, may = answer["readings"]
    assert (both["numerator"], both["denominator"]) == ("1", "2")
    assert (may["numerator"], may["denominator"], may["value"]) == ("0", "1", "0")
    # April 2026 in New York: 30 days of 1,440 minutes, one hour down.
    assert (april_uptime["numerator"], april_uptime["denominator"]) == ("43140", "43200")
    assert april_uptime["dimension"] == {"system": "ehr"}
    single = await stack.engine.get(
        "/v1/kpis/uptime_pct/values",
        headers=headers,
        params={
            "facility": "asheville-main",
            "from": "2026-04-01",
            "to": "2026-05-01",
            "dimension": "ehr",
            "granularity": "month",
        },
    )
    assert single.json()["values"][0]["value"] == april_uptime["value"]
    refused = await stack.engine.post(
        "/v1/kpis/readings",
        json={"readings": [{"kpi": "uptime", "from": "2026-04-01", "to": "2026-05-01"}]},
        headers=headers,
    )
    assert refused.status_code == 422 and refused.json()["errors"][0]["path"] == "$.readings[0].kpi"
    other = await stack.engine.post(
        "/v1/kpis/readings", json={**body, "facility": ["elsewhere"]}, headers=headers
    )
    assert other.status_code == 404


async def test_a_redelivered_event_is_reported_as_a_duplicate_and_counted_once(stack: Stack) -> None:
    claim = event("claim.submitted", time="2026-01-05T10:00:00-05:00", clean=True)
    for _ in range(3):
        assert (
            await stack.ingest.client.post("/v1/events", json=claim, headers={"X-VR-Identity": token()})
        ).status_code == 202

    async def outcome() -> dict[str, Any]:
        response = await stack.engine.get(
            f"/v1/events/{claim['source']}/{claim['id']}", headers={"X-VR-Identity": token()}
        )
        return response.json()

    found = await eventually(outcome, lambda b: b.get("duplicates") == 2)
    assert found["status"] == "duplicate"
    value = await stack.engine.get(
        "/v1/kpis/clean_claim_rate/rolling",
        headers={"X-VR-Identity": token(role="ops")},
        params={"facility": "asheville-main", "window": "7d", "at": "2026-01-07"},
    )
    assert value.json()["values"][0]["denominator"] == "1"


async def test_another_tenants_facility_is_not_found_and_unknown_events_are_404(stack: Stack) -> None:
    other = await stack.engine.get(
        "/v1/kpis/clean_claim_rate/values",
        headers={"X-VR-Identity": token(role="ops")},
        params={"facility": "someone-elses", "from": "2026-01-01", "to": "2026-02-01"},
    )
    assert other.status_code == 404 and other.json()["title"] == "Unknown facility"
    unknown = await stack.engine.get(
        "/v1/events/epic-adt-feed/never-sent", headers={"X-VR-Identity": token()}
    )
    assert unknown.status_code == 404 and unknown.json()["outcome"] == "unknown"
    bad = await stack.engine.get(
        "/v1/kpis/clean_claim_rate/values",
        headers={"X-VR-Identity": token(role="ops")},
        params={"from": "yesterday", "to": "2026-02-01"},
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["path"] == "$.query.from"
    assert (await stack.engine.get("/v1/kpis")).status_code == 401


async def test_changed_cells_are_announced_on_the_change_feed(
    stack: Stack, infrastructure: Infrastructure
) -> None:
    claims = [event("claim.submitted", time="2026-03-03T10:00:00-05:00", clean=c) for c in (True, False)]
    assert (
        await stack.ingest.client.post("/v1/events", json=claims, headers={"X-VR-Identity": token()})
    ).status_code == 202

    async def notices() -> list[dict[str, Any]]:
        landed = await read_topic(
            infrastructure.kafka_bootstrap_servers, stack.settings.updates_topic, expect=1, timeout_s=2
        )
        return [orjson.loads(m.value) for m in landed]

    def final_notice(found: list[dict[str, Any]]) -> bool:
        return any(
            n["kpi"] == "clean_claim_rate" and n["bucket"] == "2026-03-03" and n["denominator"] == "2"
            for n in found
        )

    found = await eventually(notices, final_notice)
    notice = next(n for n in found if final_notice([n]))
    assert notice == {
        "kpi": "clean_claim_rate",
        "tenant": "mission-health",
        "facility": "asheville-main",
        "bucket": "2026-03-03",
        "dimension": "",
        "numerator": "1",
        "denominator": "2",
        "sample_size": 2,
    }


async def test_kpi_value_gauges_show_the_rolling_30_day_value(stack: Stack) -> None:
    from datetime import UTC, datetime, timedelta

    from prometheus_client import REGISTRY

    from kpi_engine.entrypoints.gauges import KpiGauges

    yesterday = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    given = [
        event("medication.administered", time=yesterday, patient_scanned=True, medication_scanned=m)
        for m in (True, True, True, False)
    ]
    assert (
        await stack.ingest.client.post("/v1/events", json=given, headers={"X-VR-Identity": token()})
    ).status_code == 202
    components = stack.engine._transport.app.state.components  # type: ignore[attr-defined]
    labels = {
        "tenant": "mission-health",
        "kpi": "bcma_compliance",
        "facility": "asheville-main",
        "dimension": "",
    }

    async def refreshed() -> float | None:
        await KpiGauges(components.engine, {"mission-health": "America/New_York"}).refresh()
        return REGISTRY.get_sample_value("vr_kpi_value", labels)

    assert await eventually(refreshed, lambda v: v == 0.75)


async def test_an_event_the_database_refuses_is_dead_lettered_and_the_rest_counts(
    stack: Stack, infrastructure: Infrastructure
) -> None:
    from tests.support.publishing import publish
    from vr_shared.events import Origin, validate_event

    # A real refusal by PostgreSQL for one event (a constraint), as a corrupt row or a bug would cause.
    admin = create_engine(infrastructure.database_url)
    async with admin.begin() as conn:
        await conn.execute(
            text(
                f'ALTER TABLE "{stack.settings.db_schema}".events '
                "ADD CONSTRAINT refuse_poison CHECK (id NOT LIKE 'poison-%')"
            )
        )
    await admin.dispose()
    origin = Origin("mission-health", "America/New_York")
    good = [
        validate_event(event("claim.submitted", time="2026-04-02T10:00:00-04:00", clean=True))
        for _ in range(2)
    ]
    poison = validate_event(event("claim.submitted", time="2026-04-02T10:00:00-04:00", id_="poison-1"))
    await publish(
        infrastructure.kafka_bootstrap_servers,
        stack.settings.events_topic,
        [good[0], poison, good[1]],
        origin,
    )

    async def outcome() -> dict[str, Any]:
        response = await stack.engine.get(
            f"/v1/events/{poison.source}/{poison.id}", headers={"X-VR-Identity": token()}
        )
        return response.json()

    dead = await eventually(outcome, lambda b: b.get("status") == "dead-lettered")
    assert dead["reason"] == "processing failed: CheckViolationError"
    for kept in good:
        response = await stack.engine.get(
            f"/v1/events/{kept.source}/{kept.id}", headers={"X-VR-Identity": token()}
        )
        assert response.json()["status"] == "stored"
    assert (await stack.engine.get("/readyz")).status_code == 200  # the consumer goes on


async def test_a_backfill_never_makes_a_facility_feed_look_older(stack: Stack) -> None:
    """`vr_kpi_latest_event_time_seconds` (freshness, the silent-feed alert) keeps the newest event
    time: a later request carrying only older events leaves it where it was."""
    from datetime import UTC, datetime, timedelta

    from prometheus_client import REGISTRY

    tenant = f"fresh-{uuid.uuid4().hex[:8]}"
    headers = {"X-VR-Identity": token(tenant=tenant, facilities=frozenset({"fresh-main"}))}
    newest = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    labels = {"tenant": tenant, "facility": "fresh-main"}

    async def post(at: datetime) -> None:
        given = [event("claim.submitted", time=at.isoformat(), facility="fresh-main", clean=True)]
        assert (await stack.ingest.client.post("/v1/events", json=given, headers=headers)).status_code == 202

    async def gauge() -> float | None:
        return REGISTRY.get_sample_value("vr_kpi_latest_event_time_seconds", labels)

    await post(newest)
    assert await eventually(gauge, lambda v: v == newest.timestamp())
    await post(newest - timedelta(days=20))
    await post(newest + timedelta(minutes=1) - timedelta(days=40))
    backfilled = await eventually(
        lambda: stack.engine.get(
            "/v1/kpis/clean_claim_rate/values",
            headers={"X-VR-Identity": token(tenant=tenant, facilities=frozenset({"fresh-main"}), role="ops")},
            params={
                "from": (newest - timedelta(days=41)).date().isoformat(),
                "to": (newest + timedelta(days=1)).date().isoformat(),
                "granularity": "year",
            },
        ),
        lambda r: r.status_code == 200 and r.json()["values"][0]["sample_size"] == "3",
    )
    assert backfilled.status_code == 200
    assert await gauge() == newest.timestamp()


async def test_a_feed_watermark_only_rises_and_a_retracted_declaration_is_taken_back(stack: Stack) -> None:
    """Declarations through 1 March, then through 1 February (late, and lower: it changes nothing),
    then 1 March retracted: the feed is complete through 1 February again. A claim of 15 February
    sent after the 1 March declaration is counted and shows the declaration was wrong."""
    pipeline = {"X-VR-Identity": token()}

    def declaration(id_: str, through: str) -> dict[str, Any]:
        return event("feed.complete", id_=id_, source="billing", time=through, feed="claims", through=through)

    async def send(*events: dict[str, Any]) -> None:
        assert (
            await stack.ingest.client.post("/v1/events", json=list(events), headers=pipeline)
        ).status_code == 202

    async def claims_feed() -> dict[str, Any]:
        answer = await stack.engine.get("/v1/feeds", params={"facility": "asheville-main"}, headers=pipeline)
        assert answer.status_code == 200, answer.text
        return next(i for i in answer.json()["items"] if i["feed"] == "claims")

    async def values(headers: dict[str, str]) -> list[bool]:
        answer = await stack.engine.get(
            "/v1/kpis/clean_claim_rate/values",
            params={
                "facility": "asheville-main",
                "from": "2026-01-01",
                "to": "2026-03-01",
                "granularity": "month",
            },
            headers=headers,
        )
        return [v["complete"] for v in answer.json()["values"]]

    await send(declaration("close-mar", "2026-03-01T00:00:00-05:00"))
    await eventually(claims_feed, lambda f: f["complete_through"] == "2026-03-01T05:00:00+00:00")
    ops = {"X-VR-Identity": token(role="ops")}
    assert await values(ops) == [True, True]
    await send(declaration("close-feb", "2026-02-01T00:00:00-05:00"))
    await eventually(_stored(stack, "billing", "close-feb"), bool)
    assert (await claims_feed())["declared_by"] == {"source": "billing", "id": "close-mar"}

    late = event("claim.submitted", time="2026-02-15T10:00:00-05:00", source="billing", id_="late-claim")
    before = await _before_watermark(stack)
    await send(late)
    await eventually(lambda: _before_watermark(stack), lambda n: n == before + 1)

    retraction = event("event.retracted", source="billing", id_="retract-close-mar", retracted_id="close-mar")
    await send(retraction)
    taken_back = await eventually(claims_feed, lambda f: f["complete_through"] == "2026-02-01T05:00:00+00:00")
    assert taken_back["declared_by"] == {"source": "billing", "id": "close-feb"}
    assert taken_back["newest_event_time"] == "2026-02-15T15:00:00+00:00"
    assert await values(ops) == [True, False]


def _stored(stack: Stack, source: str, id_: str) -> Any:
    async def stored() -> bool:
        answer = await stack.engine.get(f"/v1/events/{source}/{id_}", headers={"X-VR-Identity": token()})
        return answer.status_code == 200

    return stored


async def _before_watermark(stack: Stack) -> float:
    return metric_value(generate_latest().decode(), 'vr_kpi_events_before_watermark_total{feed="claims"}')
