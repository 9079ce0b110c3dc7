"""Broker down and back (docs/events.md, what an answer means; docs/testing.md, fault tests).

The broker under fault is a dedicated local broker, so the session's broker is never disturbed: it
advertises a proxy's port, and cutting the proxy makes it unreachable to ingest without losing what it
stored; freezing it with SIGSTOP makes it hang. Ingest must answer 503 with Retry-After within 5 s,
never 202 for an unacknowledged event, and recover on its own once the broker answers again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from devstack.broker import LocalBroker, running_broker
from devstack.ports import free_port
from ingest.domain.pseudonyms import Pseudonymiser
from tests.integration.conftest import IngestUnderTest, ingest_settings, running_ingest
from tests.support.data import hl7_sample
from tests.support.examples import event
from tests.support.identity import FACILITIES, PSEUDONYM_KEY, TENANT, token
from tests.support.kafka import read_topic
from tests.support.proxy import TcpProxy
from tests.support.waiting import exposed_metrics
from vr_shared.events import EVENT_TYPES, decode_event, validate_event

pytestmark = pytest.mark.fault


@dataclass
class FaultyBroker:
    broker: LocalBroker
    proxy: TcpProxy


@pytest.fixture
async def faulty_broker() -> AsyncIterator[FaultyBroker]:
    proxy_port = free_port()
    with running_broker(advertised_port=proxy_port) as broker:
        proxy = TcpProxy(proxy_port, broker.port)
        await proxy.start()
        try:
            yield FaultyBroker(broker, proxy)
        finally:
            await proxy.cut()


@pytest.fixture
async def ingest_on_faulty_broker(faulty_broker: FaultyBroker) -> AsyncIterator[IngestUnderTest]:
    settings = ingest_settings(faulty_broker.broker.bootstrap_servers, kafka_request_timeout_ms=8_000)
    async for running in running_ingest(settings):
        yield running


def _batch(tag: str, size: int = 13) -> list[dict[str, object]]:
    return [event(EVENT_TYPES[i % len(EVENT_TYPES)], source=f"fault-{tag}") for i in range(size)]


async def _post(client: httpx.AsyncClient, batch: list[dict[str, object]]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await client.post("/v1/events", json=batch, headers={"X-VR-Identity": token()}, timeout=30)
    return response, time.monotonic() - started


async def _post_until_accepted(
    client: httpx.AsyncClient, batch: list[dict[str, object]], within_s: float
) -> None:
    deadline = time.monotonic() + within_s
    while True:
        response, _ = await _post(client, batch)
        if response.status_code == 202:
            return
        assert response.status_code == 503, response.text
        assert time.monotonic() < deadline, "ingest did not recover after the broker came back"
        await asyncio.sleep(min(int(response.headers["Retry-After"]), 1))


def _assert_unavailable(response: httpx.Response, elapsed: float) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["Retry-After"]) > 0
    assert elapsed < 5.0, f"503 took {elapsed:.2f} s"


async def _assert_on_topic_exactly(bootstrap: str, topic: str, accepted: list[dict[str, object]]) -> None:
    pseudonyms = Pseudonymiser(PSEUDONYM_KEY.encode())
    expected = {e["id"]: validate_event(pseudonyms.pseudonymise(TENANT, e)) for e in accepted}
    landed = [decode_event(m.value) for m in await read_topic(bootstrap, topic, expect=len(expected))]
    found = {event.id: event for origin, event in landed if origin.tenant == TENANT and event.id in expected}
    assert found == expected  # every 202'd event is there, exactly as sent (refs pseudonymised)


async def test_unreachable_broker_gives_503_quickly_and_ingest_recovers_without_restart(
    faulty_broker: FaultyBroker, ingest_on_faulty_broker: IngestUnderTest
) -> None:
    client = ingest_on_faulty_broker.client
    before = _batch("before")
    response, _ = await _post(client, before)
    assert response.status_code == 202

    await faulty_broker.proxy.cut()
    response, elapsed = await _post(client, _batch("during"))
    _assert_unavailable(response, elapsed)
    # Still ready: it serves (503 + Retry-After for events), so an orchestrator keeps it in its Service
    # and pipelines never meet a 502; the broker's state is in the detail and the metrics.
    ready = await client.get("/readyz")
    assert (ready.status_code, ready.json()["checks"]) == (200, {"started": "ok", "broker": "unreachable"})
    assert "vr_ingest_broker_reachable 0.0" in exposed_metrics()

    await faulty_broker.proxy.start()
    after = _batch("after")
    await _post_until_accepted(client, after, within_s=60)
    ready = await client.get("/readyz")
    assert (ready.status_code, ready.json()["checks"]) == (200, {"started": "ok", "broker": "ok"})
    assert "vr_ingest_broker_reachable 1.0" in exposed_metrics()

    await _assert_on_topic_exactly(
        faulty_broker.broker.bootstrap_servers, ingest_on_faulty_broker.settings.events_topic, before + after
    )


async def test_hung_broker_gives_503_within_5_seconds_and_events_flow_once_it_answers(
    faulty_broker: FaultyBroker, ingest_on_faulty_broker: IngestUnderTest
) -> None:
    client = ingest_on_faulty_broker.client
    before = _batch("before-hang")
    assert (await _post(client, before))[0].status_code == 202

    faulty_broker.broker.pause()
    try:
        for _ in range(3):  # repeated attempts during the hang each fail fast, none hangs
            response, elapsed = await _post(client, _batch("during-hang"))
            _assert_unavailable(response, elapsed)
    finally:
        faulty_broker.broker.resume()

    after = _batch("after-hang")
    await _post_until_accepted(client, after, within_s=60)
    await _assert_on_topic_exactly(
        faulty_broker.broker.bootstrap_servers, ingest_on_faulty_broker.settings.events_topic, before + after
    )


async def test_ingest_started_while_the_broker_is_away_serves_503_and_connects_when_it_returns(
    faulty_broker: FaultyBroker,
) -> None:
    """A rollout during a broker outage: ingest starts, stays ready (an orchestrator keeps it in its
    Service, so pipelines meet its 503 + Retry-After, not a gateway's 502) and connects by itself."""
    await faulty_broker.proxy.cut()
    settings = ingest_settings(faulty_broker.broker.bootstrap_servers, publish_timeout_seconds=1)
    async for running in running_ingest(settings):
        client = running.client
        response, elapsed = await _post(client, _batch("before-broker"))
        _assert_unavailable(response, elapsed)
        ready = await client.get("/readyz")
        assert (ready.status_code, ready.json()["checks"]) == (
            200,
            {"started": "ok", "broker": "unreachable"},
        )
        await faulty_broker.proxy.start()
        after = _batch("broker-back")
        await _post_until_accepted(client, after, within_s=60)
        await _assert_on_topic_exactly(faulty_broker.broker.bootstrap_servers, settings.events_topic, after)


async def test_hl7v2_messages_are_ar_never_aa_while_the_broker_is_away(
    faulty_broker: FaultyBroker, ingest_on_faulty_broker: IngestUnderTest
) -> None:
    """An interface engine keeps (and re-sends) a message answered AR; AA would lose it."""
    client = ingest_on_faulty_broker.client
    headers = {"X-VR-Identity": token(), "Content-Type": "x-application/hl7-v2+er7"}
    body = "\r".join([hl7_sample("generic_A01"), hl7_sample("generic_A04")]).encode()
    params = {"facility": sorted(FACILITIES)[0]}
    await faulty_broker.proxy.cut()
    started = time.monotonic()
    away = await client.post("/v1/hl7v2", content=body, headers=headers, params=params, timeout=30)
    assert away.status_code == 503 and int(away.headers["Retry-After"]) > 0
    assert time.monotonic() - started < 5.0
    admitted, registered = away.text.split("\r\n")
    assert "\rMSA|AR|31644|" in admitted and "207^Application internal error" in admitted
    assert "\rMSA|AA|31644" in registered  # an outpatient: nothing to store, nothing lost

    await faulty_broker.proxy.start()
    deadline = time.monotonic() + 60
    while True:
        back = await client.post("/v1/hl7v2", content=body, headers=headers, params=params, timeout=30)
        if back.status_code == 200:
            break
        assert back.status_code == 503 and time.monotonic() < deadline
        await asyncio.sleep(1)
    assert "\rMSA|AA|31644" in back.text.split("\r\n")[0]
