"""`GET /v1/settlement-events` hands events out in commit order and never skips one
(docs/decisions/0007-commit-order.md).

Finalize, the period watch, the change-feed consumer and a second replica write events at once: a
transaction can take a lower number and commit after one with a higher number. The interleavings are
forced with one connection per writer, and the feed is read through the service's app, with the cursor
it hands out; the randomized test lets several writers race a poller and then checks what it polled
(tests/support/commit_order.py says what "in commit order" means). The webhook deliveries behind the
feed are claimed by what is due, not after a position, and the last test shows they skip nothing.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from settlement.adapters import outbox
from settlement.adapters.migrate import migrate
from settlement.adapters.webhooks import PostgresWebhookStore
from settlement.domain.notifications import EventType, SettlementEvent
from settlement.entrypoints.app import create_app
from tests.integration.gateway.conftest import drop_schemas
from tests.integration.settlement.conftest import as_party, settlement_settings
from tests.support.commit_order import (
    Tickets,
    WrittenTransaction,
    assert_handed_out_in_commit_order,
    chosen_seed,
)
from tests.support.infrastructure import Infrastructure
from vr_shared.db import create_engine
from vr_shared.pages import encode_cursor

WRITERS = 4
BUDGET_S = 3.0  # writers race the poller this long; then it catches up


@dataclass
class Feed:
    client: httpx.AsyncClient
    engine: AsyncEngine  # settlement's own schema: writers write their events here


@pytest.fixture(scope="module")
async def feed(infrastructure: Infrastructure) -> AsyncIterator[Feed]:
    """Settlement as it runs (its consumer, watch and delivery worker beside the tests), with no KPI
    engine behind it: the feed needs none."""
    settings = settlement_settings(
        infrastructure, "http://127.0.0.1:9", f"test.kpi-updates.{uuid.uuid4().hex[:10]}"
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://settlement") as client:
            engine = create_engine(infrastructure.database_url, schema=settings.db_schema)
            yield Feed(client, engine)
            await engine.dispose()
    await drop_schemas(infrastructure, settings.db_schema)


class Poller:
    """A billing system polling the feed: it keeps the `next` cursor and what it was handed."""

    def __init__(self, feed: Feed, tenant: str) -> None:
        self._client, self._headers = feed.client, as_party(tenant, "billing")
        self.cursor: str | None = None
        self.names: list[str] = []

    async def poll(self, limit: int = 200) -> list[str]:
        params: dict[str, Any] = {"limit": limit, **({"after": self.cursor} if self.cursor else {})}
        got = await self._client.get("/v1/settlement-events", params=params, headers=self._headers)
        assert got.status_code == 200, got.text
        names = [item["data"]["name"] for item in got.json()["items"]]
        self.cursor = got.json()["next"]
        assert isinstance(self.cursor, str)  # a feed never ends
        self.names += names
        return names

    async def poll_until(self, count: int) -> list[str]:
        """Poll until `count` events were handed out, or a minute passed: a transaction elsewhere on the
        server (another test) may hold the horizon back for a moment. The caller says what is missing."""
        deadline = asyncio.get_running_loop().time() + 60
        while len(self.names) < count and asyncio.get_running_loop().time() < deadline:
            if not await self.poll():
                await asyncio.sleep(0.05)
        return self.names


async def write(conn: AsyncConnection, tenant: str, name: str) -> int:
    """A settlement fact's event, as finalize or the period watch writes it; its number."""
    event = SettlementEvent(
        EventType.CONTRACT_UPDATED, f"{tenant}-c", None, tenant, "a-vendor", {"name": name}
    )
    return await outbox.record(conn, event)


async def test_an_event_that_commits_after_a_later_one_is_polled_once_after_its_commit(feed: Feed) -> None:
    tenant = f"hs-{uuid.uuid4().hex[:8]}"
    poller = Poller(feed, tenant)
    async with feed.engine.connect() as slow, feed.engine.connect() as fast:
        await slow.begin()
        first = await write(slow, tenant, "first")  # e.g. finalize, still committing
        await fast.begin()
        second = await write(fast, tenant, "second")  # the period watch, committed at once
        await fast.commit()
        assert first < second
        # The poller looks in between: "second" could still be preceded by "first", so it waits.
        # (Paging by `seq > after` handed out "second" and then never "first".)
        assert await poller.poll() == []
        waiting_at = poller.cursor
        await slow.commit()
    assert await poller.poll_until(2) == ["first", "second"]
    assert await poller.poll() == []
    assert poller.names == ["first", "second"]
    # The cursor handed out while nothing was ready still resumes before both.
    replay = Poller(feed, tenant)
    replay.cursor = waiting_at
    assert await replay.poll() == ["first", "second"]


async def test_the_feed_pages_with_its_own_cursor_and_resumes_from_one_handed_out_before_the_upgrade(
    feed: Feed,
) -> None:
    tenant = f"hs-{uuid.uuid4().hex[:8]}"
    numbers = []
    for name in ("a", "b", "c", "d"):
        async with feed.engine.begin() as conn:
            numbers.append(await write(conn, tenant, name))
    poller = Poller(feed, tenant)
    assert await poller.poll_until(4) == ["a", "b", "c", "d"]
    paged = Poller(feed, tenant)
    assert [await paged.poll(limit=3), await paged.poll(limit=3), await paged.poll(limit=3)] == [
        ["a", "b", "c"],
        ["d"],
        [],
    ]
    # Events stored before the upgrade carry transaction 0, and their cursors were bare numbers.
    async with feed.engine.begin() as conn:
        await conn.execute(text("UPDATE settlement_events SET xid = '0' WHERE seq = ANY(:n)"), {"n": numbers})
    old = Poller(feed, tenant)
    old.cursor = encode_cursor(str(numbers[1]))  # the next of a page that ended with "b"
    assert await old.poll() == ["c", "d"]
    for made_up in ("x", "1.2.3", "-1", "1." + "9" * 21, "9" * 19):
        got = await feed.client.get(
            "/v1/settlement-events",
            params={"after": encode_cursor(made_up)},
            headers=as_party(tenant, "billing"),
        )
        assert got.status_code == 422, (made_up, got.text)
        assert got.json()["errors"][0]["path"] == "$.query.after"


async def test_writers_racing_a_poller_have_every_event_polled_once_in_commit_order(feed: Feed) -> None:
    tenant = f"hs-{uuid.uuid4().hex[:8]}"
    rng = random.Random(chosen_seed())
    poller, tickets = Poller(feed, tenant), Tickets()
    transactions: list[WrittenTransaction] = []
    stop = asyncio.Event()

    async def writer(number: int) -> None:
        async with feed.engine.connect() as conn:
            for turn in itertools.count():
                if stop.is_set():
                    return
                written = WrittenTransaction()
                transactions.append(written)
                await conn.begin()
                written.began = tickets.take()
                for _ in range(rng.randint(1, 3)):
                    written.rows.append(f"w{number}-t{turn}-r{len(written.rows)}")
                    await write(conn, tenant, written.rows[-1])
                    await asyncio.sleep(rng.random() * 0.01)
                if rng.random() < 0.1:
                    await conn.rollback()
                else:
                    await conn.commit()
                    written.committed = tickets.take()

    async def polling() -> None:
        while not stop.is_set():
            await poller.poll(limit=rng.randint(1, 7))
            await asyncio.sleep(rng.random() * 0.005)

    tasks = [asyncio.create_task(writer(n)) for n in range(WRITERS)] + [asyncio.create_task(polling())]
    await asyncio.sleep(BUDGET_S)
    stop.set()
    await asyncio.gather(*tasks)

    committed = sum(len(t.rows) for t in transactions if t.committed is not None)
    assert committed > 50, "the writers hardly wrote: the race proves nothing"
    await poller.poll_until(committed)
    await poller.poll()
    assert_handed_out_in_commit_order(poller.names, transactions)


@pytest.fixture
async def quiet_engine(infrastructure: Infrastructure) -> AsyncIterator[AsyncEngine]:
    """Settlement's tables with no delivery worker on them: only the test claims deliveries."""
    schema = f"settlement_quiet_{uuid.uuid4().hex[:10]}"
    engine = create_engine(infrastructure.database_url, schema=schema)
    await migrate(engine, schema)
    yield engine
    await engine.dispose()
    await drop_schemas(infrastructure, schema)


async def test_a_delivery_that_commits_after_a_later_one_is_still_claimed(quiet_engine: AsyncEngine) -> None:
    """Deliveries are claimed by what is due, not after a position: one that commits late is claimed on
    the next round — the delivery outbox has nothing to skip."""
    store, tenant = PostgresWebhookStore(quiet_engine), f"hs-{uuid.uuid4().hex[:8]}"
    await store.create_endpoint(tenant, "https://billing.example/hooks", ["contract.updated"], None, "k")
    async with quiet_engine.connect() as slow, quiet_engine.connect() as fast:
        await slow.begin()
        await write(slow, tenant, "first")
        await fast.begin()
        await write(fast, tenant, "second")
        await fast.commit()
        assert [d.body["data"]["name"] for d in await store.claim_due(10, 60)] == ["second"]
        await slow.commit()
    assert [d.body["data"]["name"] for d in await store.claim_due(10, 60)] == ["first"]
    assert await store.claim_due(10, 60) == []  # both leased


async def test_a_tenant_on_either_side_of_its_contracts_is_paged_once_in_commit_order(feed: Feed) -> None:
    """A tenant's page merges its events as health system and as vendor (two index scans): every event
    once, in commit order, also one where the tenant is both parties."""
    tenant, other = f"hs-{uuid.uuid4().hex[:8]}", f"v-{uuid.uuid4().hex[:8]}"
    sides = [(tenant, other), (other, tenant), (tenant, tenant), (other, tenant), (tenant, other)]
    for number, (health_system, vendor) in enumerate(sides):
        async with feed.engine.begin() as conn:
            event = SettlementEvent(
                EventType.CONTRACT_UPDATED, "c", None, health_system, vendor, {"name": f"e{number}"}
            )
            await outbox.record(conn, event)
    expected = [f"e{n}" for n in range(len(sides))]
    assert await Poller(feed, tenant).poll_until(len(sides)) == expected
    paged = Poller(feed, tenant)
    pages = [await paged.poll(limit=2) for _ in range(4)]
    assert pages == [["e0", "e1"], ["e2", "e3"], ["e4"], []]
    assert await Poller(feed, other).poll_until(4) == ["e0", "e1", "e3", "e4"]


async def test_a_cursor_from_another_database_is_refused_naming_after(feed: Feed) -> None:
    """After a restore into another PostgreSQL cluster, a poller's cursor can name a transaction this
    one has not reached: paging after it would hand out nothing until the server's ids reach it. It is
    refused, so the poller starts again (docs/operations.md, "Restoring into another cluster")."""
    got = await feed.client.get(
        "/v1/settlement-events",
        params={"after": encode_cursor(f"{2**62}.7")},
        headers=as_party(f"hs-{uuid.uuid4().hex[:8]}", "billing"),
    )
    assert got.status_code == 409, got.text
    assert got.headers["content-type"].startswith("application/problem+json")
    assert got.json()["errors"][0]["path"] == "$.query.after"
    assert "start again without `after`" in got.json()["detail"]
