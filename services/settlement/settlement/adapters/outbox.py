"""The outbox: a settlement event is written in the transaction of its fact, with one pending delivery
for every endpoint of either party subscribed to its type (docs/webhooks.md). A fact that commits has
its event and deliveries; one that rolls back has neither. The delivery worker sends them afterwards.
"""

from __future__ import annotations

from sqlalchemy import and_, any_, func, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection

from settlement.adapters import tables
from settlement.domain.notifications import SettlementEvent


async def record(conn: AsyncConnection, event: SettlementEvent) -> int:
    """Store the event and its deliveries (inside the caller's transaction); its feed position."""
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
