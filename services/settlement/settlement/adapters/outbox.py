"""The outbox: a settlement event is written in the transaction of its fact, with one pending delivery
for every endpoint of either party subscribed to its type (docs/webhooks.md). A fact that commits has
its event and deliveries; one that rolls back has neither. The delivery worker sends them afterwards.

Each event row carries the id of the transaction that wrote it (a column default), which is what the
pull feed orders and pages by (docs/decisions/0007-commit-order.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import and_, any_, func, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection

from settlement.adapters import tables
from settlement.domain.notifications import SettlementEvent


async def record(conn: AsyncConnection, event: SettlementEvent) -> int:
    """Store the event and its deliveries (inside the caller's transaction); its number (`seq`)."""
    seq: int = (
        await conn.execute(
            insert(tables.settlement_events)
            .values(
                id=event.id,
                type=event.type,
                contract_id=event.contract_id,
                period=event.period,
                health_system=event.health_system,
                vendor=event.vendor,
                data=event.data,
            )
            .returning(tables.settlement_events.c.seq)
        )
    ).scalar_one()
    e = tables.webhook_endpoints.c
    subscribed = select(e.id, literal(seq), literal("pending"), func.now()).where(
        and_(
            e.tenant.in_(sorted({event.health_system, event.vendor})),
            literal(str(event.type)) == any_(e.events),
            e.disabled_at.is_(None),
        )
    )
    d = tables.webhook_deliveries.c
    await conn.execute(
        insert(tables.webhook_deliveries).from_select(
            [d.endpoint_id, d.event_seq, d.status, d.next_attempt_at], subscribed
        )
    )
    return seq


@dataclass(frozen=True, order=True, slots=True)
class FeedPosition:
    """A place in the pull feed: just after the event numbered `seq` of transaction `xid`. The feed runs
    in (transaction, number) order; events stored before transactions were recorded carry transaction
    0, so they come first, in their old order."""

    xid: int = 0
    seq: int = 0

    def text(self) -> str:
        return f"{self.xid}.{self.seq}"

    @classmethod
    def parse(cls, text: str) -> FeedPosition | None:
        """The position a cursor names; a bare number is a cursor handed out before positions carried the
        transaction (it named an event of transaction 0). None: not a position this service makes."""
        found = _POSITION.fullmatch(text)
        if found is None:
            return None
        xid, seq = int(found["xid"] or 0), int(found["seq"])
        return cls(xid, seq) if xid < 2**64 else None


_POSITION = re.compile(r"(?:(?P<xid>[0-9]{1,20})\.)?(?P<seq>[0-9]{1,18})", re.ASCII)
