"""The change-notice outbox hands notices out in commit order and forgets exactly what it published
(docs/decisions/0007-commit-order.md).

Two instances, or an instance and `python -m kpi_engine rebuild`, queue notices at once: a transaction
can take a lower `seq` and commit after one with a higher `seq`. The interleavings are forced with one
connection per writer; the randomized test lets several writers race a reader and then checks what
the reader published (tests/support/commit_order.py says what "in commit order" means).
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Sequence

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from kpi_engine.adapters.notices import PostgresNoticeOutbox
from tests.support.commit_order import (
    Tickets,
    WrittenTransaction,
    assert_handed_out_in_commit_order,
    chosen_seed,
)
from tests.support.waiting import eventually
from vr_shared.kafka import OutgoingMessage

WRITERS = 4
BUDGET_S = 3.0  # writers race the reader this long; then the reader catches up


class Published:
    """A publisher that keeps what it was given, in order."""

    def __init__(self) -> None:
        self.names: list[str] = []

    async def __call__(self, messages: Sequence[OutgoingMessage]) -> None:
        for message in messages:
            notice = orjson.loads(message.value)
            assert message.key == f"{notice['tenant']}|{notice['kpi']}|{notice['facility']}".encode()
            self.names.append(notice["name"])


async def queue(conn: AsyncConnection, name: str) -> int:
    """Queue a notice as a batch does (its transaction's id by default); its seq."""
    notice = {"tenant": "t", "kpi": "alos", "facility": "f", "bucket": "2026-03-01", "name": name}
    statement = text("INSERT INTO outbox (payload) VALUES (CAST(:notice AS jsonb)) RETURNING seq")
    return int((await conn.execute(statement, {"notice": orjson.dumps(notice).decode()})).scalar_one())


async def queued(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT payload->>'name' FROM outbox ORDER BY seq"))
        return [row[0] for row in rows]


async def drain(outbox: PostgresNoticeOutbox, published: Published, limit: int = 100) -> None:
    while await outbox.publish_ready(published, limit):
        pass


async def drained_until(outbox: PostgresNoticeOutbox, published: Published, count: int) -> list[str]:
    """Drain until `count` notices are out, or a minute passed: a transaction elsewhere on the server
    (another test) may hold the horizon back for a moment. The caller's assertions say what is missing."""
    deadline = asyncio.get_running_loop().time() + 60
    while len(published.names) < count and asyncio.get_running_loop().time() < deadline:
        await drain(outbox, published)
        await asyncio.sleep(0.05)
    return published.names


async def test_a_notice_that_commits_after_a_later_one_is_published_once_after_its_commit(
    kpi_schema: tuple[AsyncEngine, str],
) -> None:
    engine, _ = kpi_schema
    outbox, published = PostgresNoticeOutbox(engine), Published()
    async with engine.connect() as slow, engine.connect() as fast:
        await slow.begin()
        first = await queue(slow, "first")  # e.g. a rebuild's correction, still committing
        await fast.begin()
        second = await queue(fast, "second")  # the engine's batch, committed at once
        await fast.commit()
        assert first < second
        # The reader looks in between: "second" could still be preceded by "first", so it waits.
        # (Reading by seq and then forgetting `seq <= 2` published "second" and lost "first".)
        await drain(outbox, published)
        assert published.names == []
        assert await queued(engine) == ["second"]  # kept ("first" is not visible yet)
        assert await outbox.first_waiting_age() > 0  # what operators see while a transaction is open
        await slow.commit()
    assert await drained_until(outbox, published, 2) == ["first", "second"]
    await drain(outbox, published)
    assert published.names == ["first", "second"]
    assert await queued(engine) == []
    assert await outbox.first_waiting_age() == 0


async def test_a_notice_committed_while_others_are_published_is_not_forgotten_with_them(
    kpi_schema: tuple[AsyncEngine, str],
) -> None:
    engine, _ = kpi_schema
    outbox, published = PostgresNoticeOutbox(engine), Published()
    async with engine.connect() as older, engine.connect() as younger:
        await older.begin()
        await older.execute(text("SELECT pg_current_xact_id()"))  # it began writing first
        await younger.begin()
        lower = await queue(younger, "lower")  # a lower seq, from a younger transaction
        higher = await queue(older, "higher")
        assert lower < higher
        await older.commit()

        async def publish_while_lower_commits(messages: Sequence[OutgoingMessage]) -> None:
            await published(messages)
            await younger.commit()  # between reading the chunk and forgetting it

        # The older transaction's notice is ready (no transaction still running began before it);
        # the younger one's commits while it is being published, with a lower seq than it.
        await eventually(lambda: outbox.publish_ready(publish_while_lower_commits, 100), bool, 60)
    assert published.names == ["higher"]
    assert await queued(engine) == ["lower"]  # forgetting `seq <= higher` would have deleted it
    assert await drained_until(outbox, published, 2) == ["higher", "lower"]
    assert await queued(engine) == []


async def test_notices_go_out_by_transaction_id_as_a_number_and_are_forgotten_by_that_order(
    kpi_schema: tuple[AsyncEngine, str],
) -> None:
    """Transaction ids compared as numbers: 9 before 10 (as text "10" sorts first), whatever the seq."""
    engine, _ = kpi_schema
    outbox, published = PostgresNoticeOutbox(engine), Published()
    async with engine.begin() as conn:
        for name, xid in (("ten", 10), ("nine", 9), ("ten-again", 10)):
            notice = {"tenant": "t", "kpi": "alos", "facility": "f", "bucket": "2026-03-01", "name": name}
            await conn.execute(
                text("INSERT INTO outbox (payload, xid) VALUES (CAST(:notice AS jsonb), CAST(:xid AS xid8))"),
                {"notice": orjson.dumps(notice).decode(), "xid": xid},
            )
    assert await outbox.publish_ready(published, 2) == 2
    assert published.names == ["nine", "ten"]
    assert await queued(engine) == ["ten-again"]  # the range forgotten ends at the last one published
    await drain(outbox, published)
    assert published.names == ["nine", "ten", "ten-again"]
    assert await queued(engine) == []


async def test_writers_racing_a_reader_have_every_notice_published_once_in_commit_order(
    kpi_schema: tuple[AsyncEngine, str],
) -> None:
    engine, _ = kpi_schema
    rng = random.Random(chosen_seed())
    outbox, published, tickets = PostgresNoticeOutbox(engine), Published(), Tickets()
    transactions: list[WrittenTransaction] = []
    stop = asyncio.Event()

    async def writer(number: int) -> None:
        async with engine.connect() as conn:
            for turn in itertools.count():
                if stop.is_set():
                    return
                written = WrittenTransaction()
                transactions.append(written)
                await conn.begin()
                written.began = tickets.take()
                if rng.random() < 0.5:  # an id taken early, as a batch's first writes take it
                    await conn.execute(text("SELECT pg_current_xact_id()"))
                for _ in range(rng.randint(1, 3)):
                    written.rows.append(f"w{number}-t{turn}-r{len(written.rows)}")
                    await queue(conn, written.rows[-1])
                    await asyncio.sleep(rng.random() * 0.01)
                if rng.random() < 0.1:
                    await conn.rollback()
                else:
                    await conn.commit()
                    written.committed = tickets.take()

    async def reader() -> None:
        # Two drainers, as two engine instances: one at a time publishes (the other finds it busy).
        while not stop.is_set():
            await outbox.publish_ready(published, rng.randint(1, 7))
            await asyncio.sleep(rng.random() * 0.005)

    tasks = [asyncio.create_task(writer(n)) for n in range(WRITERS)]
    tasks += [asyncio.create_task(reader()) for _ in range(2)]
    await asyncio.sleep(BUDGET_S)
    stop.set()
    await asyncio.gather(*tasks)

    committed = sum(len(t.rows) for t in transactions if t.committed is not None)
    assert committed > 50, "the writers hardly wrote: the race proves nothing"
    await drained_until(outbox, published, committed)
    await drain(outbox, published)
    assert_handed_out_in_commit_order(published.names, transactions)
    assert await queued(engine) == []
