"""Ingest throughput against the raw aiokafka producer, on the same machine, in one run.

* ingest: `python -m ingest` (one uvicorn worker) in its own process; this process is the load
  generator, posting HTTP batches of 500 valid events (pre-serialised, several requests in flight)
  and counting events answered 202 — each one acknowledged by the broker with acks=all.
* raw producer: the same events, serialised exactly as ingest writes them (pseudonymised CloudEvents
  JSON, same keys and headers), sent straight from this process with aiokafka, acks=all:
  `send()` per message (the producer's standard API) and `send_batch()` (record batches per partition,
  the path ingest itself uses).

Broker: KAFKA_BOOTSTRAP_SERVERS if set, else a local Tansu broker started here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
import uuid

import httpx
import orjson

from bench.infra import PSEUDONYM_KEY, SERVICE_SECRETS, broker_servers, identity_token, service_process
from bench.report import machine, today, write_section
from bench.support import percentile, spread
from ingest.domain.pseudonyms import Pseudonymiser
from vr_shared.events import Origin, encode_event, message_headers, message_key
from vr_shared.identity import Identity
from vr_shared.kafka import BatchPublisher, OutgoingMessage, TopicSpec, create_producer, ensure_topics
from vr_shared.roles import Role

BATCH = 500
BATCHES = 120  # distinct request bodies, cycled
CONCURRENCY = 4  # requests in flight: keeps the single worker busy while a response travels back
WARMUP_S, MEASURE_S = 3.0, 15.0
ROUNDS = 3
PARTITIONS = 12
TENANT, FACILITIES = "bench-health", ("bench-main", "bench-west", "bench-east")
TIMEZONE = "America/New_York"


def sample_event(i: int) -> dict[str, object]:
    """A realistic mix: ADT, medication, claims, payments, outages, costs (valid for every type)."""
    facility = FACILITIES[i % len(FACILITIES)]
    base = {
        "specversion": "1.0",
        "id": f"bench-{i}",
        "source": "bench-feed",
        "facility": facility,
        "time": "2026-03-04T10:00:00-05:00",
    }
    patient, encounter = f"MRN-{i % 50_000:06d}", f"ENC-{i // 3:07d}"
    kinds: list[tuple[str, dict[str, object]]] = [
        (
            "encounter.admitted",
            {"encounter_ref": encounter, "patient_ref": patient, "encounter_class": "inpatient"},
        ),
        (
            "encounter.discharged",
            {
                "encounter_ref": encounter,
                "patient_ref": patient,
                "encounter_class": "inpatient",
                "admitted_at": "2026-03-01T08:00:00-05:00",
                "disposition": "home",
            },
        ),
        ("medication.ordered", {"order_ref": f"ORD-{i}", "encounter_ref": encounter, "entry_method": "cpoe"}),
        (
            "medication.administered",
            {
                "administration_ref": f"MAR-{i}",
                "encounter_ref": encounter,
                "patient_scanned": True,
                "medication_scanned": True,
            },
        ),
        ("claim.submitted", {"claim_ref": f"CLM-{i}", "amount": "1250.00", "clean": i % 7 != 0}),
        (
            "claim.adjudicated",
            {
                "claim_ref": f"CLM-{i}",
                "outcome": "paid",
                "initial": True,
                "paid_amount": "1100.00",
                "denied_amount": "0",
            },
        ),
        ("payment.received", {"amount": "75.50", "patient_payment": True, "point_of_service": i % 2 == 0}),
        ("cost.incurred", {"category": "revenue_cycle", "amount": "180.00"}),
    ]
    type_, data = kinds[i % len(kinds)]
    return {**base, "type": type_, "data": data}


UNAVAILABLE_ANSWERS = [0]
"""503s answered while measuring (the broker did not keep up); their events are not counted."""


def request_bodies() -> list[bytes]:
    return [orjson.dumps([sample_event(b * BATCH + i) for i in range(BATCH)]) for b in range(BATCHES)]


def serialised_messages() -> list[OutgoingMessage]:
    """Exactly what ingest writes for the same events."""
    pseudonyms = Pseudonymiser(PSEUDONYM_KEY.encode())
    messages = []
    for i in range(BATCH * BATCHES):
        document = pseudonyms.pseudonymise(TENANT, sample_event(i))
        messages.append(
            OutgoingMessage(
                message_key(TENANT, document),
                encode_event(Origin(TENANT, TIMEZONE), document),
                message_headers(TENANT, document),
            )
        )
    return messages


def ingest_process(bootstrap: str, topic: str) -> contextlib.AbstractContextManager[str]:
    """Ingest as its own process; its base URL."""
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        **SERVICE_SECRETS["ingest"],
        "VR_EVENTS_TOPIC": topic,
        "VR_EVENTS_TOPIC_PARTITIONS": str(PARTITIONS),
    }
    return service_process("ingest", env)


async def measure_ingest(url: str, bodies: list[bytes]) -> tuple[float, list[float]]:
    token = identity_token(
        Identity(
            tenant=TENANT,
            role=Role.PIPELINE,
            key_id="bench",
            facilities=frozenset(FACILITIES),
            timezone=TIMEZONE,
        ),
        "ingest",
    )
    return await post_load(url, {"X-VR-Identity": token}, bodies)


async def post_load(
    base_url: str,
    auth: dict[str, str],
    bodies: list[bytes],
    *,
    path: str = "/v1/events",
    content_type: str = "application/json",
    ok: int = 202,
    per_body: int = BATCH,
) -> tuple[float, list[float]]:
    """Items (events, messages) per second answered `ok` over MEASURE_S seconds after a warm-up, and
    each request's latency."""
    headers = {**auth, "Content-Type": content_type}
    counted, latencies, next_body = 0, [], 0
    measuring = False

    async with httpx.AsyncClient(
        base_url=base_url, timeout=30, limits=httpx.Limits(max_connections=CONCURRENCY)
    ) as client:

        async def worker(stop_at: float) -> None:
            nonlocal counted, next_body
            while time.perf_counter() < stop_at:
                body = bodies[next_body % len(bodies)]
                next_body += 1
                started = time.perf_counter()
                response = await client.post(path, content=body, headers=headers)
                if response.status_code == 503:  # the broker is behind: back off as a pipeline would
                    UNAVAILABLE_ANSWERS[0] += measuring
                    await asyncio.sleep(1.0)
                    continue
                if response.status_code != ok:
                    raise RuntimeError(f"ingest answered {response.status_code}: {response.text[:300]}")
                if measuring:
                    counted += per_body
                    latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(worker(time.perf_counter() + WARMUP_S) for _ in range(CONCURRENCY)))
        measuring, started = True, time.perf_counter()
        await asyncio.gather(*(worker(started + MEASURE_S) for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
    return counted / elapsed, latencies


async def measure_raw_send(bootstrap: str, topic: str, messages: list[OutgoingMessage]) -> float:
    producer = create_producer(bootstrap, client_id="bench-raw")
    await producer.start()
    try:
        started = time.perf_counter()
        for offset in range(0, len(messages), BATCH):  # acknowledged per 500, as an HTTP batch would be
            deliveries = [
                await producer.send(topic, m.value, key=m.key, headers=list(m.headers))
                for m in messages[offset : offset + BATCH]
            ]
            await asyncio.gather(*deliveries)
        return len(messages) / (time.perf_counter() - started)
    finally:
        await producer.stop()


async def measure_raw_batches(bootstrap: str, topic: str, messages: list[OutgoingMessage]) -> float:
    producer = create_producer(bootstrap, client_id="bench-raw-batch")
    await producer.start()
    try:
        publisher = BatchPublisher(producer, topic)
        started = time.perf_counter()
        for offset in range(0, len(messages), BATCH):
            await publisher.publish(messages[offset : offset + BATCH])
        return len(messages) / (time.perf_counter() - started)
    finally:
        await producer.stop()


async def main() -> None:
    bodies, messages = request_bodies(), serialised_messages()
    raw_send, raw_batch, ingest, latencies = [], [], [], []
    with broker_servers() as bootstrap:
        topic = f"bench.ingest.{uuid.uuid4().hex[:8]}"
        raw_topic = f"bench.raw.{uuid.uuid4().hex[:8]}"
        await ensure_topics(bootstrap, [TopicSpec(topic, PARTITIONS), TopicSpec(raw_topic, PARTITIONS)])
        await measure_raw_send(bootstrap, raw_topic, messages[: BATCH * 20])  # warm-up, not counted
        with ingest_process(bootstrap, topic) as url:
            # Interleaved rounds, medians reported: the machine is shared and one run can be off by 30 %.
            for _ in range(ROUNDS):
                raw_send.append(await measure_raw_send(bootstrap, raw_topic, messages))
                raw_batch.append(await measure_raw_batches(bootstrap, raw_topic, messages))
                rate, round_latencies = await measure_ingest(url, bodies)
                ingest.append(rate)
                latencies.extend(round_latencies)
    write_section("ingest", report(ingest, raw_send, raw_batch, latencies))


def report(ingest: list[float], raw_send: list[float], raw_batch: list[float], latencies: list[float]) -> str:
    ratio_send = statistics.median(ingest) / statistics.median(raw_send)
    ratio_batch = statistics.median(ingest) / statistics.median(raw_batch)
    verdict = "meets" if ratio_send >= 0.6 else "misses"
    broker_name = (
        "KAFKA_BOOTSTRAP_SERVERS" if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") else "local Tansu 0.6"
    )
    ingest_path = (
        f"ingest over HTTP (one uvicorn worker, batches of {BATCH}, {CONCURRENCY} requests in flight, "
        "load generator on the same machine)"
    )
    p50, p99 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
    body = f"""## Ingest throughput

{today()} — {machine()}.
Broker: {broker_name} on loopback, {PARTITIONS} partitions, acks=all.
Run: `make bench` (`python -m bench.ingest`).
Median of {ROUNDS} interleaved rounds (range in brackets), events/s:

| path | events/s |
|---|---:|
| {ingest_path} | {spread(ingest)} |
| raw aiokafka `send()` per message, same serialized events, acks per {BATCH} | {spread(raw_send)} |
| raw aiokafka `send_batch()` (record batch per partition), same events | {spread(raw_batch)} |

* **ingest / raw `send()` = {ratio_send:.2f}** — target ≥ 0.6: {verdict} the target.
* ingest / raw `send_batch()` = {ratio_batch:.2f} (the fastest way this client can write these events at all).
* Request latency for a batch of {BATCH} under this load: p50 {p50:.0f} ms, p99 {p99:.0f} ms
  ({len(latencies)} requests).

Ingest validates, checks facility and clock, pseudonymises with HMAC-SHA-256 and serialises each event
before the broker sees it; it publishes through record batches per partition
(`vr_shared.kafka.BatchPublisher`), which is why it can outrun the raw per-message `send()` path.
"""
    print(body)
    return body


if __name__ == "__main__":
    asyncio.run(main())
