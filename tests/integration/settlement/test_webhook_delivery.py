"""Webhook delivery on the real PostgreSQL (docs/webhooks.md): replicas never claim one delivery twice,
an endpoint that keeps failing is given up on — each delivery failed after its schedule, the
endpoint disabled (and saying why), its metrics counted — and a receiver that holds its answer holds
one of the worker's slots until the attempt's deadline, never the worker nor other tenants' deliveries —
however many tenants' receivers are slow, the last free slot waits for a tenant sending nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks.webhooks import Webhook

from settlement.adapters import outbox
from settlement.adapters.migrate import migrate
from settlement.adapters.name_lookups import NameLookups
from settlement.adapters.webhook_sender import AddressCheck, WebhookSender
from settlement.adapters.webhooks import PostgresWebhookStore
from settlement.domain.notifications import EventType, SettlementEvent
from settlement.domain.webhooks import parse_networks
from settlement.entrypoints.delivery import WebhookDeliveryWorker
from tests.integration.gateway.conftest import drop_schemas
from tests.integration.settlement.webhook_receivers import Receiver, receiving
from tests.support.infrastructure import Infrastructure
from tests.support.waiting import eventually
from vr_shared.db import create_engine

CLOSED_PORT_URL = "http://127.0.0.1:9/hooks"  # discard: nothing listens, every attempt is refused


@pytest.fixture
async def engine(infrastructure: Infrastructure) -> AsyncIterator[AsyncEngine]:
    """Settlement's tables in a schema of their own, with no settlement running on it: only the test's
    worker and stores touch these deliveries."""
    schema = f"settlement_hooks_{uuid.uuid4().hex[:10]}"
    engine = create_engine(infrastructure.database_url, schema=schema)
    await migrate(engine, schema)
    yield engine
    await engine.dispose()
    await drop_schemas(infrastructure, schema)


async def _event(engine: AsyncEngine, tenant: str) -> None:
    event = SettlementEvent(
        EventType.CONTRACT_UPDATED, f"{tenant}-c", None, tenant, "a-vendor", {"version": 1}
    )
    async with engine.begin() as conn:
        await outbox.record(conn, event)


def _loopback_check() -> AddressCheck:
    """Loopback allowed: the receivers under test listen there."""
    return AddressCheck(parse_networks("127.0.0.0/8"), NameLookups(threads=4), lookup_timeout_s=5)


async def test_two_replicas_never_claim_the_same_delivery(engine: AsyncEngine) -> None:
    store, tenant = PostgresWebhookStore(engine), f"hs-{uuid.uuid4().hex[:8]}"
    await store.create_endpoint(tenant, CLOSED_PORT_URL, ["contract.updated"], None, "k")
    for _ in range(30):
        await _event(engine, tenant)
    first, second = await asyncio.gather(store.claim_due(30, 60), store.claim_due(30, 60))
    claimed = [d.id for d in first] + [d.id for d in second]
    assert len(claimed) == len(set(claimed)) == 30
    assert await store.claim_due(30, 60) == []  # leased: not due again until the lease passes


async def test_a_claim_leaves_the_last_free_slot_to_a_tenant_sending_nothing(engine: AsyncEngine) -> None:
    """Four free slots, a share of two: two tenants with three due deliveries each get three slots
    between them, not four; while they send, neither gets the fourth — a third tenant's delivery does."""
    store = PostgresWebhookStore(engine)
    first, second, third = (f"hs-{uuid.uuid4().hex[:8]}" for _ in range(3))
    for tenant in (first, second, third):
        await store.create_endpoint(tenant, CLOSED_PORT_URL, ["contract.updated"], None, "k")
    for tenant in (first, first, first, second, second, second):
        await _event(engine, tenant)

    claimed = await store.claim_due(4, 60, share=2, sending={})
    assert [d.tenant for d in claimed] == [first, first, second]
    sending = {first: 2, second: 1}
    assert await store.claim_due(1, 60, share=2, sending=sending) == []  # the last slot is kept

    await _event(engine, third)
    assert [d.tenant for d in await store.claim_due(1, 60, share=2, sending=sending)] == [third]


async def test_an_endpoint_failing_past_its_schedule_is_failed_then_disabled(engine: AsyncEngine) -> None:
    store, tenant = PostgresWebhookStore(engine), f"hs-{uuid.uuid4().hex[:8]}"
    endpoint, _ = await store.create_endpoint(tenant, CLOSED_PORT_URL, ["contract.updated"], None, "k")
    await _event(engine, tenant)
    disabled_before = REGISTRY.get_sample_value("vr_settlement_webhook_endpoints_disabled_total") or 0
    failed_before = (
        REGISTRY.get_sample_value("vr_settlement_webhook_attempts_total", {"outcome": "failed"}) or 0
    )
    async with httpx.AsyncClient(timeout=2) as http:
        worker = WebhookDeliveryWorker(
            store,
            WebhookSender(http, _loopback_check(), deadline_s=2),
            schedule=(0.2, 0.2),
            disable_after_s=0.3,
            poll_interval_s=0.1,
            concurrency=4,
            lease_s=5,
        )
        for _ in range(30):
            await worker.deliver_due()
            if (await store.deliveries(endpoint.id, after=0, limit=5))[0].status == "failed":
                break
            await asyncio.sleep(0.1)
    (delivery,) = await store.deliveries(endpoint.id, after=0, limit=5)
    assert delivery.status == "failed" and delivery.next_attempt_at is None
    assert len(delivery.attempts) == 3  # the first attempt and the two of the schedule
    assert all(a["status_code"] is None and "ConnectError" in a["error"] for a in delivery.attempts)
    shown = await store.endpoint(tenant, endpoint.id)
    assert shown is not None and shown.disabled_at is not None and shown.failing_since is not None
    assert "every delivery failed" in (shown.disabled_reason or "")
    assert REGISTRY.get_sample_value("vr_settlement_webhook_endpoints_disabled_total") == disabled_before + 1
    failed_now = REGISTRY.get_sample_value("vr_settlement_webhook_attempts_total", {"outcome": "failed"})
    assert failed_now == failed_before + 1

    # A disabled endpoint gets no new deliveries until its owner enables it again.
    await _event(engine, tenant)
    assert len(await store.deliveries(endpoint.id, after=0, limit=5)) == 1
    enabled = await store.enable(tenant, endpoint.id)
    assert enabled is not None and enabled.disabled_at is None
    await _event(engine, tenant)
    assert len(await store.deliveries(endpoint.id, after=0, limit=5)) == 2


def _worker(
    store: PostgresWebhookStore, http: httpx.AsyncClient, *, deadline_s: float, concurrency: int = 2
) -> WebhookDeliveryWorker:
    return WebhookDeliveryWorker(
        store,
        WebhookSender(http, _loopback_check(), deadline_s=deadline_s),
        schedule=(60.0,),
        disable_after_s=86400,
        poll_interval_s=0.05,
        concurrency=concurrency,
        lease_s=60,
    )


async def _subscribed(store: PostgresWebhookStore, tenant: str, url: str) -> tuple[str, str]:
    endpoint, secret = await store.create_endpoint(tenant, url, ["contract.updated"], None, "k")
    return endpoint.id, secret


async def test_one_tenants_trickling_receiver_never_holds_another_tenants_delivery(
    engine: AsyncEngine,
) -> None:
    """Two slots; the slow tenant's three deliveries are the oldest due, yet it gets one slot and the
    other tenant's delivery goes out in the same round. The slow receiver's answer would take 30 s:
    its attempt ends at the 0.5 s deadline, a failure to retry."""
    store = PostgresWebhookStore(engine)
    slow_tenant, other_tenant = f"hs-{uuid.uuid4().hex[:8]}", f"hs-{uuid.uuid4().hex[:8]}"
    async with (
        receiving(Receiver("127.0.0.1", trickle=True)) as slow,
        receiving(Receiver("127.0.0.1")) as fast,
        httpx.AsyncClient(timeout=5, trust_env=False) as http,
    ):
        slow_endpoint, _ = await _subscribed(store, slow_tenant, f"http://127.0.0.1:{slow.port}/hooks")
        fast_endpoint, secret = await _subscribed(store, other_tenant, f"http://127.0.0.1:{fast.port}/hooks")
        for _ in range(3):
            await _event(engine, slow_tenant)
        await _event(engine, other_tenant)

        assert await _worker(store, http, deadline_s=0.5).deliver_due() == 2

    (delivered,) = await store.deliveries(fast_endpoint, after=0, limit=5)
    assert delivered.status == "delivered" and delivered.attempts[0]["status_code"] == 204
    (request,) = fast.requests
    assert Webhook(secret).verify(request.body, request.headers)["data"] == {"version": 1}
    tried = [d for d in await store.deliveries(slow_endpoint, after=0, limit=5) if d.attempts]
    assert len(tried) == 1 and tried[0].status == "pending"  # one slot, and retried later
    (attempt,) = tried[0].attempts
    assert attempt["error"] == "timed out (the attempt's deadline is 0.5 s)"
    assert attempt["duration_ms"] < 10_000  # the deadline, not the receiver's 30 s


async def test_a_slot_freed_is_filled_while_a_slow_send_is_still_under_way(engine: AsyncEngine) -> None:
    """The slow receiver holds its attempt (deadline 20 s) while an event that arrives after it started
    is delivered: the worker does not wait for the slowest send of a round before claiming more."""
    store = PostgresWebhookStore(engine)
    slow_tenant, other_tenant = f"hs-{uuid.uuid4().hex[:8]}", f"hs-{uuid.uuid4().hex[:8]}"
    async with (
        receiving(Receiver("127.0.0.1", trickle=True)) as slow,
        receiving(Receiver("127.0.0.1")) as fast,
        httpx.AsyncClient(timeout=5, trust_env=False) as http,
    ):
        await _subscribed(store, slow_tenant, f"http://127.0.0.1:{slow.port}/hooks")
        fast_endpoint, _ = await _subscribed(store, other_tenant, f"http://127.0.0.1:{fast.port}/hooks")
        await _event(engine, slow_tenant)
        running = asyncio.create_task(_worker(store, http, deadline_s=20).run())
        try:
            await asyncio.wait_for(slow.arrived.wait(), 10)
            await _event(engine, other_tenant)  # only now: it cannot have been in the slow send's round
            (delivered,) = await eventually(
                lambda: store.deliveries(fast_endpoint, after=0, limit=5),
                lambda found: found[0].status == "delivered",
                timeout_s=10,
            )
            assert slow.open_connections == 1 and len(fast.requests) == 1  # the slow send goes on
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
    assert delivered.attempts[0]["status_code"] == 204


async def test_two_tenants_trickling_receivers_never_hold_a_third_tenants_delivery(
    engine: AsyncEngine,
) -> None:
    """Four slots, a share of two each: two tenants whose receivers trickle their answers (deadline
    20 s) hold three slots between them, so a third tenant's delivery — due only once their sends are
    all under way — goes out while every slow send still waits for its answer, not after a deadline."""
    store = PostgresWebhookStore(engine)
    slow_tenants, other_tenant = (
        [f"hs-{uuid.uuid4().hex[:8]}" for _ in range(2)],
        f"hs-{uuid.uuid4().hex[:8]}",
    )
    async with (
        receiving(Receiver("127.0.0.1", trickle=True)) as slow,
        receiving(Receiver("127.0.0.1")) as fast,
        httpx.AsyncClient(timeout=5, trust_env=False) as http,
    ):
        for tenant in slow_tenants:
            await _subscribed(store, tenant, f"http://127.0.0.1:{slow.port}/hooks")
            for _ in range(3):
                await _event(engine, tenant)
        fast_endpoint, _ = await _subscribed(store, other_tenant, f"http://127.0.0.1:{fast.port}/hooks")
        running = asyncio.create_task(_worker(store, http, deadline_s=20, concurrency=4).run())
        try:

            async def slow_sends() -> int:
                return len(slow.requests)

            await eventually(slow_sends, lambda n: n == 3, timeout_s=10)
            await _event(engine, other_tenant)
            (delivered,) = await eventually(
                lambda: store.deliveries(fast_endpoint, after=0, limit=5),
                lambda found: found[0].status == "delivered",
                timeout_s=10,
            )
            assert slow.open_connections == 3 and len(slow.requests) == 3  # every slow send goes on
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
    assert delivered.attempts[0]["status_code"] == 204
