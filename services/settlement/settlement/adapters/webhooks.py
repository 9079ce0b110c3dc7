"""PostgreSQL persistence of webhook endpoints, their deliveries and the settlement-event feed
(docs/webhooks.md).

Deliveries are claimed with `FOR UPDATE SKIP LOCKED` and a lease (their next attempt moved past the
send's timeout), so several settlement replicas share the work and a crash mid-send retries the
delivery after the lease — at least once, never lost. Every time is the database's clock.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, literal, select, text, tuple_, union_all, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine

from settlement.adapters import tables
from settlement.adapters.outbox import FeedPosition
from settlement.adapters.tables import TransactionId
from settlement.domain.notifications import payload
from settlement.domain.webhooks import Delivery, Endpoint, new_endpoint_id, new_secret


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """A claimed delivery with what sending it needs."""

    id: int
    endpoint_id: str
    tenant: str
    url: str
    signing_secrets: tuple[str, ...]  # the current secret, and the previous one during an overlap
    event_id: str
    body: dict[str, Any]
    failed_attempts: int


@dataclass(frozen=True, slots=True)
class Backlog:
    pending: int
    oldest_seconds: float


# Due deliveries, oldest first, shared out among tenants (docs/webhooks.md, "Who sends"): of one tenant at
# most `share` in this worker's sends at once (those it is sending already count, `holding` is what the
# tenant would hold with this one), and a tenant already sending never takes the last free slot (a row
# past `sending_up_to` goes to a tenant's first send only): it stays for a tenant sending nothing, so
# two or more slow tenants never take every slot.
# `candidates` reads at most `share` per endpoint (a tenant takes no more) through the partial index
# (endpoint, next attempt): the claim's work grows with the number of endpoints, not with the backlog.
# The ranking locks nothing (a window function cannot take row locks); `claimed` locks and checks again
# what it locks.
_CLAIM = text(
    """
    WITH candidates AS (
        SELECT c.id, e.tenant, c.next_attempt_at
        FROM webhook_endpoints e CROSS JOIN LATERAL (
            SELECT d.id, d.next_attempt_at FROM webhook_deliveries d
            WHERE d.endpoint_id = e.id AND d.status = 'pending' AND d.next_attempt_at <= now()
            ORDER BY d.next_attempt_at, d.id
            LIMIT :share
        ) c
        WHERE e.disabled_at IS NULL
    ), ranked AS (
        SELECT id, next_attempt_at,
            coalesce((CAST(:sending AS jsonb) ->> tenant)::int, 0)
                + row_number() OVER (PARTITION BY tenant ORDER BY next_attempt_at, id) AS holding
        FROM candidates
    ), due AS (
        SELECT id, next_attempt_at, holding, row_number() OVER (ORDER BY next_attempt_at, id) AS place
        FROM ranked WHERE holding <= :share
    ), claimed AS (
        SELECT d.id FROM webhook_deliveries d JOIN due ON due.id = d.id
        WHERE d.status = 'pending' AND d.next_attempt_at <= now()
            AND (due.holding = 1 OR due.place <= :sending_up_to)
        ORDER BY due.next_attempt_at, due.id
        LIMIT :limit
        FOR UPDATE OF d SKIP LOCKED
    )
    UPDATE webhook_deliveries d SET next_attempt_at = now() + make_interval(secs => :lease)
    FROM claimed, webhook_endpoints e, settlement_events ev
    WHERE d.id = claimed.id AND e.id = d.endpoint_id AND ev.seq = d.event_seq
    RETURNING d.id, d.endpoint_id, e.tenant, d.failed_attempts, e.url, e.secret,
        CASE WHEN e.previous_secret_expires_at > now() THEN e.previous_secret END AS previous_secret,
        ev.id AS event_id, ev.type, ev.created_at, ev.data
    """
)


class PostgresWebhookStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    # --- endpoints -------------------------------------------------------------------------------

    async def create_endpoint(
        self, tenant: str, url: str, events: list[str], description: str | None, created_by: str
    ) -> tuple[Endpoint, str]:
        """The endpoint and its secret (shown to its owner this once)."""
        secret = new_secret()
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    tables.webhook_endpoints.insert()
                    .values(
                        id=new_endpoint_id(),
                        tenant=tenant,
                        url=url,
                        events=sorted(set(events)),
                        description=description,
                        secret=secret,
                        created_by=created_by,
                    )
                    .returning(*tables.webhook_endpoints.c)
                )
            ).one()
        return _endpoint(row), secret

    async def count_endpoints(self, tenant: str) -> int:
        e = tables.webhook_endpoints.c
        async with self._engine.connect() as conn:
            count: int = (await conn.execute(select(func.count()).where(e.tenant == tenant))).scalar_one()
        return count

    async def endpoints(self, tenant: str, *, after: str | None, limit: int) -> list[Endpoint]:
        e = tables.webhook_endpoints.c
        query = select(tables.webhook_endpoints).where(e.tenant == tenant).order_by(e.id).limit(limit)
        if after is not None:
            query = query.where(e.id > after)
        async with self._engine.connect() as conn:
            return [_endpoint(row) for row in await conn.execute(query)]

    async def endpoint(self, tenant: str, endpoint_id: str) -> Endpoint | None:
        e = tables.webhook_endpoints.c
        query = select(tables.webhook_endpoints).where(e.tenant == tenant, e.id == endpoint_id)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _endpoint(row)

    async def delete_endpoint(self, tenant: str, endpoint_id: str) -> bool:
        """Gone with its deliveries (the events stay in the feed)."""
        e = tables.webhook_endpoints.c
        async with self._engine.begin() as conn:
            deleted = await conn.execute(
                delete(tables.webhook_endpoints)
                .where(e.tenant == tenant, e.id == endpoint_id)
                .returning(e.id)
            )
            return deleted.first() is not None

    async def rotate_secret(
        self, tenant: str, endpoint_id: str, overlap_seconds: float
    ) -> tuple[str, datetime] | None:
        """A new secret; the current one keeps signing beside it for the overlap. None: no endpoint."""
        secret = new_secret()
        e = tables.webhook_endpoints.c
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    update(tables.webhook_endpoints)
                    .where(e.tenant == tenant, e.id == endpoint_id)
                    .values(
                        previous_secret=e.secret,
                        previous_secret_expires_at=func.now() + _seconds(overlap_seconds),
                        secret=secret,
                    )
                    .returning(e.previous_secret_expires_at)
                )
            ).first()
        return None if row is None else (secret, row.previous_secret_expires_at)

    async def enable(self, tenant: str, endpoint_id: str) -> Endpoint | None:
        """Back in service after it was disabled: its waiting deliveries are sent again."""
        e = tables.webhook_endpoints.c
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    update(tables.webhook_endpoints)
                    .where(e.tenant == tenant, e.id == endpoint_id)
                    .values(disabled_at=None, disabled_reason=None, failing_since=None)
                    .returning(*tables.webhook_endpoints.c)
                )
            ).first()
        return None if row is None else _endpoint(row)

    # --- deliveries ------------------------------------------------------------------------------

    async def deliveries(self, endpoint_id: str, *, after: int, limit: int) -> list[Delivery]:
        """Newest first (what an owner looks at), a page at a time."""
        query = (
            _deliveries()
            .where(tables.webhook_deliveries.c.endpoint_id == endpoint_id)
            .order_by(tables.webhook_deliveries.c.id.desc())
            .limit(limit)
        )
        if after:
            query = query.where(tables.webhook_deliveries.c.id < after)
        async with self._engine.connect() as conn:
            return [_delivery(row) for row in await conn.execute(query)]

    async def replay(self, endpoint_id: str, delivery_id: int) -> Delivery | None:
        """Send it again, now, on a fresh schedule (same event id: a receiver deduplicates)."""
        d = tables.webhook_deliveries.c
        async with self._engine.begin() as conn:
            replayed = await conn.execute(
                update(tables.webhook_deliveries)
                .where(d.endpoint_id == endpoint_id, d.id == delivery_id)
                .values(status="pending", failed_attempts=0, next_attempt_at=func.now(), delivered_at=None)
                .returning(d.id)
            )
            if replayed.first() is None:
                return None
            row = (await conn.execute(_deliveries().where(d.id == delivery_id))).one()
        return _delivery(row)

    async def claim_due(
        self,
        limit: int,
        lease_seconds: float,
        *,
        share: int | None = None,
        sending: Mapping[str, int] | None = None,
    ) -> list[DueDelivery]:
        """Up to `limit` due deliveries, leased: the caller's free slots. With a `share`, one tenant gets
        at most `share` less what the caller is `sending` of that tenant's already, and a tenant already
        sending (or given one in this claim) never the last of the `limit` — it is kept for a tenant
        sending nothing. Without one, no bound."""
        bounds = {
            "share": limit if share is None else share,
            "sending": json.dumps(dict(sending or {})),
            "sending_up_to": limit if share is None else limit - 1,
        }
        async with self._engine.begin() as conn:
            rows = (await conn.execute(_CLAIM, {"limit": limit, "lease": lease_seconds, **bounds})).all()
        return [
            DueDelivery(
                id=row.id,
                endpoint_id=row.endpoint_id,
                tenant=row.tenant,
                url=row.url,
                signing_secrets=tuple(s for s in (row.secret, row.previous_secret) if s),
                event_id=row.event_id,
                body=payload(row.type, row.created_at, row.data),
                failed_attempts=row.failed_attempts,
            )
            for row in rows
        ]

    async def delivered(self, due: DueDelivery, attempt: dict[str, Any]) -> None:
        d, e = tables.webhook_deliveries.c, tables.webhook_endpoints.c
        async with self._engine.begin() as conn:
            await conn.execute(
                update(tables.webhook_deliveries)
                .where(d.id == due.id)
                .values(
                    status="delivered",
                    delivered_at=func.now(),
                    next_attempt_at=None,
                    attempts=d.attempts.op("||")(bindparam("attempt", [attempt], type_=JSONB)),
                )
            )
            await conn.execute(
                update(tables.webhook_endpoints).where(e.id == due.endpoint_id).values(failing_since=None)
            )

    async def failed(
        self, due: DueDelivery, attempt: dict[str, Any], retry_in: float | None, disable_after: float
    ) -> str | None:
        """Record a failed attempt: the next one in `retry_in` seconds, or none (the delivery has
        failed). The endpoint is disabled once it has failed without a success for `disable_after`
        seconds; returns the reason when this attempt disabled it."""
        d, e = tables.webhook_deliveries.c, tables.webhook_endpoints.c
        next_at = None if retry_in is None else func.now() + _seconds(retry_in)
        async with self._engine.begin() as conn:
            await conn.execute(
                update(tables.webhook_deliveries)
                .where(d.id == due.id)
                .values(
                    status="failed" if retry_in is None else "pending",
                    failed_attempts=d.failed_attempts + 1,
                    next_attempt_at=next_at,
                    attempts=d.attempts.op("||")(bindparam("attempt", [attempt], type_=JSONB)),
                )
            )
            failing = (
                await conn.execute(
                    update(tables.webhook_endpoints)
                    .where(e.id == due.endpoint_id)
                    .values(failing_since=func.coalesce(e.failing_since, func.now()))
                    .returning(e.failing_since)
                )
            ).first()
            if failing is None:
                return None
            reason = f"every delivery failed for {disable_after / 86400:g} days; last: {attempt['error']}"
            disabled = await conn.execute(
                update(tables.webhook_endpoints)
                .where(
                    e.id == due.endpoint_id,
                    e.disabled_at.is_(None),
                    e.failing_since <= func.now() - _seconds(disable_after),
                )
                .values(disabled_at=func.now(), disabled_reason=reason)
                .returning(e.id)
            )
            return reason if disabled.first() is not None else None

    async def backlog(self) -> Backlog:
        d = tables.webhook_deliveries.c
        query = select(
            func.count(), func.coalesce(func.extract("epoch", func.now() - func.min(d.created_at)), 0)
        ).where(d.status == "pending")
        async with self._engine.connect() as conn:
            count, oldest = (await conn.execute(query)).one()
        return Backlog(int(count), float(oldest))

    # --- the pull feed ---------------------------------------------------------------------------

    async def events(
        self, tenant: str | None, *, after: FeedPosition, limit: int
    ) -> list[tuple[FeedPosition, dict[str, Any]]]:
        """Events of contracts the tenant is party to (every one for None: a platform admin), in commit
        order, after a feed position; (position, item). Only events that no transaction still running
        can precede are handed out (docs/decisions/0007-commit-order.md): a later page never holds an
        event that belongs before this one's. FeedPositionAhead: the position names a transaction this
        database has not reached — it was handed out by another PostgreSQL cluster (a restore)."""
        async with self._engine.connect() as conn:
            rows = (await conn.execute(_feed_page(tenant, after, limit))).all()
            if not rows and after.xid and not await conn.scalar(_REACHED, {"xid": after.xid}):
                raise FeedPositionAhead(after)
        return [
            (FeedPosition(row.xid, row.seq), {"id": row.id, **payload(row.type, row.created_at, row.data)})
            for row in rows
        ]


class FeedPositionAhead(Exception):
    """A feed position beyond every transaction of this database: it cannot have been handed out here,
    and paging from it would skip everything written until the server's transaction ids reach it."""

    def __init__(self, position: FeedPosition) -> None:
        super().__init__(
            f"the position names transaction {position.xid}, which this database has not reached: the "
            "database was restored or moved since it was handed out; start again without `after` and "
            "skip the event ids already seen (docs/webhooks.md)"
        )


def _feed_page(tenant: str | None, after: FeedPosition, limit: int) -> Any:
    """One page in (xid, seq) order. A tenant's page merges two scans that each stop after `limit` rows:
    its events as health system, along `(health_system, xid, seq)`, and as vendor, along
    `(vendor, xid, seq)` (an event where the tenant is both parties comes from the first). Each scan
    is a range of its index from `(tenant, after)` up to the tenant's last entry, ordered by the whole
    key, so no other index can serve it: with `health_system = tenant` PostgreSQL may walk the commit
    order index and filter, which reads every later event of every tenant when this one has nothing new
    (decision 0007 has the figures)."""
    ev = tables.settlement_events.c
    xid, seq = literal(after.xid, TransactionId()), literal(after.seq)
    horizon = ev.xid < _COMMIT_HORIZON
    if tenant is None:
        after_position = tuple_(ev.xid, ev.seq) > tuple_(xid, seq)
        return (
            select(tables.settlement_events)
            .where(after_position, horizon)
            .order_by(ev.xid, ev.seq)
            .limit(limit)
        )
    as_health_system = _party_scan(ev.health_system, tenant, xid, seq, limit, horizon)
    as_vendor = _party_scan(ev.vendor, tenant, xid, seq, limit, horizon, ev.health_system != tenant)
    both = union_all(as_health_system, as_vendor).subquery()
    return select(both).order_by(both.c.xid, both.c.seq).limit(limit)


def _party_scan(party: Any, tenant: str, xid: Any, seq: Any, limit: int, *conditions: Any) -> Any:
    """A tenant's events as one party, after (xid, seq): a range of the `(party, xid, seq)` index."""
    ev = tables.settlement_events.c
    return (
        select(tables.settlement_events)
        .where(
            tuple_(party, ev.xid, ev.seq) > tuple_(literal(tenant), xid, seq), party <= tenant, *conditions
        )
        .order_by(party, ev.xid, ev.seq)
        .limit(limit)
    )


# Transactions older than the oldest one still running have all ended: nothing can commit before their
# events any more (pg_current_snapshot is the statement's own snapshot).
_COMMIT_HORIZON = select(func.pg_snapshot_xmin(func.pg_current_snapshot())).scalar_subquery()
# Whether a transaction id was ever handed out here: below the snapshot's xmax (the next id to be
# assigned). Unlike pg_current_xact_id() it gives the reading transaction no id of its own.
_REACHED = text("SELECT CAST(:xid AS xid8) < pg_snapshot_xmax(pg_current_snapshot())")


def _seconds(seconds: float) -> Any:
    return func.make_interval(0, 0, 0, 0, 0, 0, float(seconds))


def _endpoint(row: Any) -> Endpoint:
    return Endpoint(
        id=row.id,
        tenant=row.tenant,
        url=row.url,
        events=tuple(row.events),
        description=row.description,
        created_at=row.created_at,
        failing_since=row.failing_since,
        disabled_at=row.disabled_at,
        disabled_reason=row.disabled_reason,
    )


def _deliveries() -> Any:
    d, ev = tables.webhook_deliveries.c, tables.settlement_events.c
    return select(
        d.id,
        d.endpoint_id,
        d.status,
        d.attempts,
        d.next_attempt_at,
        d.delivered_at,
        d.created_at,
        ev.id.label("event_id"),
        ev.type.label("event_type"),
    ).join(tables.settlement_events, ev.seq == d.event_seq)


def _delivery(row: Any) -> Delivery:
    return Delivery(
        id=row.id,
        endpoint_id=row.endpoint_id,
        event_id=row.event_id,
        event_type=row.event_type,
        status=row.status,
        attempts=list(row.attempts),
        next_attempt_at=row.next_attempt_at,
        delivered_at=row.delivered_at,
        created_at=row.created_at,
    )
