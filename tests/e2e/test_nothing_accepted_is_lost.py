"""Nothing accepted is ever lost (docs/operations.md, deploy/devstack/README.md), with every part a
process of its own, as `make up` runs them: PostgreSQL with fsync on, the broker on durable storage (a
file-backed S3 server), ingest, the KPI engine and the gateway.

1. 55,000 events through the gateway while, in turn, the broker and its storage, the KPI engine, ingest
   and PostgreSQL are killed with SIGKILL and started again. A pipeline resends what was not answered
   202 (503 from ingest while the broker is away, 503 from the gateway while ingest is). Afterwards the
   engine has counted every event exactly once: the KPI's sample size through the API is 55,000.
   (`make up`'s own process tree — a burst, Ctrl-C at once, the next `make up` — is in test_local_stack.py.)
2. The durable local broker alone: topics, messages and a group's committed offsets survive SIGKILL of
   the broker and its storage server.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.broker import LocalBroker
from devstack.ports import free_port
from devstack.postgres import LocalPostgres
from devstack.processes import settings_environment
from devstack.s3 import LocalS3
from devstack.services import LocalService
from tests.integration.conftest import ingest_settings
from tests.integration.gateway.conftest import ADMIN_KEY, gateway_settings
from tests.integration.kpi.test_engine_service import engine_settings
from tests.support.infrastructure import Infrastructure
from tests.support.waiting import eventually
from vr_shared.kafka import TopicSpec, create_consumer, create_producer, ensure_topics

pytestmark = pytest.mark.fault

BATCH = 1_000
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class DurableStack:
    postgres: LocalPostgres
    s3: LocalS3
    broker: LocalBroker
    ingest: LocalService
    engine: LocalService
    gateway: LocalService


@pytest.fixture
def durable_stack(tmp_path: Path) -> Iterator[DurableStack]:
    postgres = LocalPostgres(tmp_path / "pgdata", free_port(), fsync=True)
    postgres.start()
    s3 = LocalS3(tmp_path / "s3", free_port(), log_path=tmp_path / "s3.log")
    s3.start()
    broker = LocalBroker(free_port(), log_path=tmp_path / "broker.log", storage=s3)
    broker.start()
    infra = Infrastructure(broker.bootstrap_servers, postgres.url, "durable")
    ingest_config = ingest_settings(infra.kafka_bootstrap_servers, publish_timeout_seconds=2)
    engine_config = engine_settings(infra, ingest_config.events_topic).model_copy(
        update={"batch_max_records": 2_000}
    )
    ingest = LocalService.on_free_ports(
        "ingest", settings_environment(ingest_config), log_path=tmp_path / "ingest.log"
    )
    engine = LocalService.on_free_ports(
        "kpi_engine", settings_environment(engine_config), log_path=tmp_path / "kpi-engine.log"
    )
    unused = f"http://127.0.0.1:{free_port()}"  # settlement is not part of this test
    gateway_config = gateway_settings(
        infra,
        {"ingest": ingest.url, "kpi-engine": engine.url, "settlement": unused},
        key_cache_seconds=60,  # keys resolved before PostgreSQL goes away still work while it is away
    )
    gateway = LocalService.on_free_ports(
        "gateway", settings_environment(gateway_config), log_path=tmp_path / "gateway.log"
    )
    started: list[Any] = [postgres, s3, broker]
    try:
        for service in (ingest, engine, gateway):
            service.start()
            started.append(service)
        yield DurableStack(postgres, s3, broker, ingest, engine, gateway)
    finally:
        for part in reversed(started):
            part.stop()


def claims(tag: str, count: int) -> list[dict[str, Any]]:
    """`count` clean claims spread over January to November 2026: each is one unit of the KPI's sample
    size."""
    return [
        {
            "id": f"{tag}-{i}",
            "source": "claims-feed",
            "type": "claim.submitted",
            "time": f"2026-{1 + i % 11:02d}-{1 + i % 28:02d}T10:00:00Z",
            "facility": "main",
            "data": {"claim_ref": f"C{i}", "amount": "10.00", "clean": True},
        }
        for i in range(count)
    ]


@dataclass
class Pipeline:
    """A hospital pipeline: sends batches through the gateway and resends whatever was not answered
    202, after the Retry-After it was given (or a second)."""

    client: httpx.AsyncClient
    key: str
    accepted: set[str] = field(default_factory=set)
    answers: dict[int, int] = field(default_factory=dict)  # status → count

    async def send_until_accepted(self, batch: list[dict[str, Any]]) -> None:
        while True:
            try:
                answer = await self.client.post(
                    "/v1/events", json=batch, headers={"Authorization": f"Bearer {self.key}"}
                )
            except httpx.HTTPError:
                await asyncio.sleep(1)
                continue
            self.answers[answer.status_code] = self.answers.get(answer.status_code, 0) + 1
            if answer.status_code == 202:
                assert answer.json()["rejected"] == 0, answer.text[:500]
                self.accepted.update(e["id"] for e in batch)
                return
            assert answer.status_code in (429, 503, 504), answer.text[:500]
            if answer.status_code == 503:  # a transient failure: the client is told when to retry
                assert "Retry-After" in answer.headers, answer.text[:500]
            await asyncio.sleep(float(answer.headers.get("Retry-After", "1")))


async def _tenant(client: httpx.AsyncClient, admin: str, tenant: str) -> tuple[str, str]:
    """A health system with facility `main`; its pipeline and ops keys."""
    headers = {"Authorization": f"Bearer {admin}"}
    body = {"id": tenant, "name": tenant, "kind": "health_system", "timezone": "UTC", "facilities": ["main"]}
    assert (await client.post("/v1/tenants", json=body, headers=headers)).status_code == 201
    keys = []
    for role in ("pipeline", "ops"):
        made = await client.post(
            "/v1/api-keys", json={"tenant_id": tenant, "role": role, "name": role}, headers=headers
        )
        keys.append(made.json()["key"])
    return keys[0], keys[1]


async def counted(client: httpx.AsyncClient, ops_key: str) -> int:
    """How many claims the engine counted, as the API tells (the KPI's sample size over 2026)."""
    answer = await client.get(
        "/v1/kpis/clean_claim_rate/values",
        params={"from": "2026-01-01", "to": "2027-01-01", "granularity": "year"},
        headers={"Authorization": f"Bearer {ops_key}"},
    )
    if answer.status_code != 200:
        return -1
    return int(answer.json()["values"][0]["sample_size"])


async def test_every_accepted_event_counts_once_while_each_part_is_killed_in_turn(
    durable_stack: DurableStack,
) -> None:
    stack = durable_stack
    events = claims("kill", 55_000)
    batches = [events[i : i + BATCH] for i in range(0, len(events), BATCH)]
    async with httpx.AsyncClient(base_url=stack.gateway.url, timeout=30) as client:
        pipeline_key, ops_key = await _tenant(client, ADMIN_KEY, f"durable-{uuid.uuid4().hex[:6]}")
        pipeline = Pipeline(client, pipeline_key)

        async def broker_and_storage() -> None:
            stack.broker.kill()
            stack.s3.kill()
            await asyncio.sleep(3)  # longer than ingest's publish timeout: some requests get 503
            await asyncio.to_thread(stack.s3.start)
            await asyncio.to_thread(stack.broker.start)

        async def restart(kill: Callable[[], None], start: Callable[[], None]) -> None:
            kill()
            await asyncio.sleep(2)
            await asyncio.to_thread(start)

        crashes: list[Callable[[], Awaitable[None]]] = [
            broker_and_storage,
            lambda: restart(stack.engine.kill, stack.engine.start),
            lambda: restart(stack.ingest.kill, stack.ingest.start),
            lambda: restart(stack.postgres.kill, stack.postgres.start),
        ]
        # Five rounds of 11 batches, two senders each; in the first four a part is killed once the
        # round's first batches are in, and started again while the senders go on.
        rounds = [batches[i : i + 11] for i in range(0, len(batches), 11)]
        for round_batches, crash in zip(rounds, [*crashes, None], strict=True):
            await _round(pipeline, round_batches, crash)
        assert len(pipeline.accepted) == len(events)
        # Resending what was already accepted changes nothing (a pipeline that did not get the answer).
        for batch in batches[:3]:
            await pipeline.send_until_accepted(batch)
        total = await eventually(lambda: counted(client, ops_key), lambda n: n == len(events), 240)
        assert total == 55_000
        await asyncio.sleep(3)  # nothing more trickles in: counted once, not at least once
        assert await counted(client, ops_key) == 55_000
        # The pipeline met the crashes: 503 while the broker was away and while ingest was; never a 500
        # or a 502.
        assert pipeline.answers[202] >= len(batches)
        assert pipeline.answers.get(503, 0) >= 2, pipeline.answers
        assert pipeline.answers.get(500, 0) == 0 and pipeline.answers.get(502, 0) == 0, pipeline.answers
        print("answers seen by the pipeline:", pipeline.answers)


async def _round(
    pipeline: Pipeline, batches: list[list[dict[str, Any]]], crash: Callable[[], Awaitable[None]] | None
) -> None:
    """Two senders share the round's batches; the crash comes as soon as two of them are in, so it
    meets batches still to send, and the senders go on through it."""
    pending, two_in, sent = iter(batches), asyncio.Event(), [0]

    async def send_all() -> None:
        for batch in pending:  # shared by both senders: each batch is taken once
            await pipeline.send_until_accepted(batch)
            sent[0] += 1
            if sent[0] >= 2:
                two_in.set()

    async def crash_mid_round() -> None:
        if crash is not None:
            await two_in.wait()
            await crash()

    await asyncio.gather(send_all(), send_all(), crash_mid_round())


async def test_the_local_broker_keeps_topics_messages_and_group_offsets_across_sigkill(
    tmp_path: Path,
) -> None:
    """The durable local broker itself: 5,000 messages; a group reads about 2,000 and commits; the broker
    and its storage server are killed with SIGKILL and started again: the topic is there and the group
    resumes where it committed, reading exactly the rest (nothing lost, nothing read twice)."""
    s3 = LocalS3(tmp_path / "s3", free_port(), log_path=tmp_path / "s3.log")
    s3.start()
    broker = LocalBroker(free_port(), log_path=tmp_path / "broker.log", storage=s3)
    broker.start()
    topic, group = "durable.check", "durable-check"
    try:
        await ensure_topics(broker.bootstrap_servers, [TopicSpec(topic, 3)])
        producer = create_producer(broker.bootstrap_servers, client_id="durable-check")
        await producer.start()
        try:
            sent = [await producer.send(topic, f"m{i}".encode(), key=f"k{i}".encode()) for i in range(5_000)]
            await asyncio.gather(*sent)
        finally:
            await producer.stop()
        first = await _read_and_commit(broker.bootstrap_servers, topic, group, at_least=2_000)
        broker.kill()
        s3.kill()
        s3.start()
        broker.start()
        rest = await _read_and_commit(broker.bootstrap_servers, topic, group, at_least=None)
        assert 2_000 <= len(first) < 5_000
        assert sorted(first + rest) == sorted(f"m{i}" for i in range(5_000))  # each exactly once
    finally:
        broker.stop()
        s3.stop()


async def _read_and_commit(bootstrap: str, topic: str, group: str, at_least: int | None) -> list[str]:
    """Read as `group` until `at_least` messages (or, with None, until nothing is left), then commit."""
    consumer = create_consumer(bootstrap, topic, group_id=group, session_timeout_ms=6_000)
    await consumer.start()
    seen: list[str] = []
    try:
        deadline = asyncio.get_running_loop().time() + 90
        while asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=3_000, max_records=500)
            records = [r for rs in batch.values() for r in rs]
            seen += [(r.value or b"").decode() for r in records]
            if (at_least is not None and len(seen) >= at_least) or (
                at_least is None and seen and not records
            ):
                break
        await consumer.commit()
    finally:
        await consumer.stop()
    return seen
