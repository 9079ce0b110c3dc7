"""The change-notice outbox, read in commit order (docs/decisions/0007-commit-order.md).

A batch queues its notices in its own transaction (`effect_writes`), each row stamped with that
transaction's id. Two instances, or an instance and a rebuild, queue at once, so a notice with a lower
`seq` can commit after one with a higher `seq`. A reader therefore hands out only notices written by
transactions older than the oldest one still running (the snapshot's `xmin`): nothing can commit before
them any more. It hands them out by transaction, then by `seq`, and deletes exactly the rows it
published: those up to the last of them in that order — never "every `seq` up to n", which would take a
notice that committed meanwhile with it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from vr_shared.kafka import OutgoingMessage

Publish = Callable[[Sequence[OutgoingMessage]], Awaitable[None]]

# One drainer at a time per schema: two instances publishing the same rows at once would interleave
# their copies, so a consumer could see an older notice of a cell after a newer one.
_TAKE_TURN = text("SELECT pg_try_advisory_xact_lock(hashtextextended(current_schema() || '.outbox', 0))")
_READY = text(
    """SELECT xid, seq, payload::text AS value,
        concat_ws('|', payload->>'tenant', payload->>'kpi', payload->>'facility') AS key
    FROM outbox
    WHERE xid < (SELECT pg_snapshot_xmin(pg_current_snapshot()))
    ORDER BY xid, seq
    LIMIT :limit"""
)
_FIRST_WAITING_AGE = text(
    "SELECT coalesce(extract(epoch FROM now() - (SELECT queued_at FROM outbox ORDER BY xid, seq LIMIT 1)), 0)"
)
# Exactly the rows published: the first ones in (xid, seq) order below the horizon. A row committed
# since was written by a transaction still running when they were read, whose xid is at or above that
# horizon — above every row read — so the range cannot take it (and one drainer at a time deletes).
_FORGET = text("DELETE FROM outbox WHERE (xid, seq) <= (CAST(:xid AS xid8), :seq)")


class PostgresNoticeOutbox:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def publish_ready(self, publish: Publish, limit: int) -> int:
        """Publish up to `limit` notices that nothing uncommitted can precede, in commit order, then
        delete exactly those (at least once: a crash in between publishes them again). Returns how many
        were published — 0 when none is ready or another instance is draining."""
        async with self._engine.begin() as conn:
            if not await conn.scalar(_TAKE_TURN):
                return 0
            rows = (await conn.execute(_READY, {"limit": limit})).all()
            if rows:
                await publish([OutgoingMessage(row.key.encode(), row.value.encode(), []) for row in rows])
                await conn.execute(_FORGET, {"xid": rows[-1].xid, "seq": rows[-1].seq})
        return len(rows)

    async def first_waiting_age(self) -> float:
        """Seconds since the transaction of the first notice still queued began (0: none is queued)."""
        async with self._engine.connect() as conn:
            return float(await conn.scalar(_FIRST_WAITING_AGE) or 0)
