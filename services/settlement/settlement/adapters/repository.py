"""PostgreSQL persistence of contracts, period inputs, final statements, adjustments and the audit log.

Every write and its audit record commit in one transaction. Final statements are inserted once
(primary key contract + period): a second finalize finds the first and returns it.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import any_, func, insert, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from settlement.adapters import outbox, tables
from settlement.domain import notifications
from settlement.domain.contract import Contract, load_contract
from settlement.domain.money import decimal_text
from settlement.domain.notifications import SettlementEvent
from settlement.domain.stored import Adjustment, FinalStatement, StoredContract
from vr_shared.identity import Identity


class UnknownContract(LookupError):
    """No such contract, or one the caller is not party to (the two look the same)."""


class ContractExists(Exception):
    """A contract with this id exists already; a change is a PUT (new version)."""


class PostgresSettlementStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    # --- contracts -------------------------------------------------------------------------------

    async def create_contract(self, contract: Contract, actor: Identity) -> StoredContract:
        document = contract.as_document()
        async with self._engine.begin() as conn:
            created = await conn.execute(
                pg_insert(tables.contracts)
                .values(
                    id=contract.id, health_system=contract.health_system, vendor=contract.vendor, version=1
                )
                .on_conflict_do_nothing()
                .returning(tables.contracts.c.created_at)
            )
            if created.first() is None:
                raise ContractExists(
                    f"contract {contract.id!r} exists; PUT /v1/contracts/{contract.id} changes it"
                )
            await self._add_version(conn, contract.id, 1, document, actor)
            await _audit(conn, contract.id, "contract.created", actor, None, document)
            await outbox.record(conn, notifications.contract_updated(contract, 1))
        stored = await self.contract(contract.id)
        assert stored is not None
        return stored

    async def update_contract(self, contract: Contract, actor: Identity) -> StoredContract:
        document = contract.as_document()
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    update(tables.contracts)
                    .where(tables.contracts.c.id == contract.id)
                    .values(
                        version=tables.contracts.c.version + 1,
                        health_system=contract.health_system,
                        vendor=contract.vendor,
                        updated_at=func.now(),
                    )
                    .returning(tables.contracts.c.version)
                )
            ).first()
            if row is None:
                raise UnknownContract(contract.id)
            previous = await _document(conn, contract.id, row.version - 1)
            await self._add_version(conn, contract.id, row.version, document, actor)
            await _audit(conn, contract.id, "contract.updated", actor, previous, document)
            await outbox.record(conn, notifications.contract_updated(contract, row.version))
        stored = await self.contract(contract.id)
        assert stored is not None
        return stored

    async def _add_version(
        self, conn: AsyncConnection, contract_id: str, version: int, document: dict[str, Any], actor: Identity
    ) -> None:
        await conn.execute(
            insert(tables.contract_versions).values(
                contract_id=contract_id, version=version, document=document, created_by=actor.key_id
            )
        )

    async def contract(self, contract_id: str, version: int | None = None) -> StoredContract | None:
        c, v = tables.contracts.c, tables.contract_versions.c
        query = _versions().where(
            v.contract_id == contract_id, v.version == (version if version is not None else c.version)
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _stored(row)

    async def contracts_of(
        self, tenant: str | None, *, after: str | None = None, limit: int | None = None
    ) -> list[StoredContract]:
        """Contracts the tenant is party to (all of them for None: a platform admin), latest versions,
        by id: those after `after`, at most `limit`."""
        c, v = tables.contracts.c, tables.contract_versions.c
        query = _versions().where(c.version == v.version).order_by(c.id).limit(limit)
        if tenant is not None:
            query = query.where((c.health_system == tenant) | (c.vendor == tenant))
        if after is not None:
            query = query.where(c.id > after)
        async with self._engine.connect() as conn:
            return [_stored(row) for row in await conn.execute(query)]

    async def contract_ids(self) -> list[str]:
        """Every contract's id (the period watch loads each on its own: one unreadable document must not
        keep the others from being checked)."""
        async with self._engine.connect() as conn:
            ids = await conn.execute(select(tables.contracts.c.id).order_by(tables.contracts.c.id))
            return list(ids.scalars())

    # --- period inputs ---------------------------------------------------------------------------

    async def put_inputs(
        self, contract_id: str, period: str, inputs: dict[str, Decimal], actor: Identity
    ) -> dict[str, str]:
        document = {name: decimal_text(value) for name, value in sorted(inputs.items())}
        async with self._engine.begin() as conn:
            previous = await _inputs(conn, contract_id, period)
            statement = pg_insert(tables.period_inputs).values(
                contract_id=contract_id, period=period, inputs=document
            )
            await conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["contract_id", "period"],
                    set_={"inputs": statement.excluded.inputs, "updated_at": func.now()},
                )
            )
            await _audit(conn, contract_id, "inputs.put", actor, previous, document, period=period)
            # A final period's change is booked as an adjustment; asked for in this transaction, it is
            # not lost whatever happens after the commit (the period watch does it if nothing else does).
            await _ask_recheck(conn, contract_id, period, "period inputs changed after finalization")
        return document

    async def inputs(self, contract_id: str, period: str) -> dict[str, Decimal]:
        async with self._engine.connect() as conn:
            stored = await _inputs(conn, contract_id, period)
        return {name: Decimal(value) for name, value in (stored or {}).items()}

    # --- final statements and adjustments --------------------------------------------------------

    async def finalize(
        self,
        contract_id: str,
        period: str,
        statement: dict[str, Any],
        basis: dict[str, Any],
        scope: tuple[str, list[str], list[str], date, date],
        idempotency_key: str | None,
        actor: Identity,
        event: SettlementEvent,
    ) -> FinalStatement:
        """Store the final statement unless one exists, with its `statement.finalized` event; either way
        return the one that is final."""
        health_system, facilities, kpis, start, end = scope
        async with self._engine.begin() as conn:
            await _lock_period(conn, contract_id, period)
            inserted = await conn.execute(
                pg_insert(tables.final_statements)
                .values(
                    contract_id=contract_id,
                    period=period,
                    contract_version=statement["contract_version"],
                    statement=statement,
                    sha256=statement["sha256"],
                    basis=basis,
                    health_system=health_system,
                    facilities=facilities,
                    kpis=kpis,
                    period_start=start,
                    period_end=end,
                    idempotency_key=idempotency_key,
                    finalized_by=actor.key_id,
                )
                .on_conflict_do_nothing()
                .returning(tables.final_statements.c.period)
            )
            if inserted.first() is not None:
                await _audit(conn, contract_id, "settlement.finalized", actor, None, statement, period=period)
                await outbox.record(conn, event)
        final = await self.final(contract_id, period)
        assert final is not None
        return final

    async def final(self, contract_id: str, period: str) -> FinalStatement | None:
        f = tables.final_statements.c
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        f.statement,
                        f.basis,
                        f.idempotency_key,
                        f.rechecked_at,
                        f.recheck_requests,
                        f.recheck_reason,
                    ).where(f.contract_id == contract_id, f.period == period)
                )
            ).first()
        if row is None:
            return None
        return FinalStatement(
            row.statement,
            row.basis,
            row.idempotency_key,
            rechecked=row.rechecked_at is not None,
            recheck_requests=row.recheck_requests,
            recheck_reason=row.recheck_reason,
        )

    async def ask_recheck(self, contract_id: str, period: str, reason: str) -> None:
        """Leave a final statement pending a reconciliation (none when the period is not final)."""
        async with self._engine.begin() as conn:
            await _ask_recheck(conn, contract_id, period, reason)

    async def mark_rechecked(self, contract_id: str, period: str, requests: int) -> bool:
        """Mark the pending reconciliation done — unless another was asked for since the caller read the
        statement (`requests`, as `final` answered it before the reconciliation read its data)."""
        f = tables.final_statements.c
        async with self._engine.begin() as conn:
            done = await conn.execute(
                update(tables.final_statements)
                .where(
                    f.contract_id == contract_id,
                    f.period == period,
                    f.rechecked_at.is_(None),
                    f.recheck_requests == requests,
                )
                .values(rechecked_at=func.now())
                .returning(f.period)
            )
            return done.first() is not None

    async def finals_to_recheck(self) -> list[tuple[str, str]]:
        """Final statements with a reconciliation pending (their finalize stopped before its recheck, an
        input put, a reconciliation that waited for maturation or failed), oldest first."""
        f = tables.final_statements.c
        query = select(f.contract_id, f.period).where(f.rechecked_at.is_(None)).order_by(f.finalized_at)
        async with self._engine.connect() as conn:
            return [(r.contract_id, r.period) for r in await conn.execute(query)]

    async def finals_touched_by(
        self, tenant: str, facility: str, kpi: str, day: date
    ) -> list[tuple[str, str]]:
        """Final statements whose numbers a change of this KPI cell can move."""
        f = tables.final_statements.c
        query = select(f.contract_id, f.period).where(
            f.health_system == tenant,
            literal(facility) == any_(f.facilities),
            literal(kpi) == any_(f.kpis),
            f.period_start <= day,
            f.period_end > day,
        )
        async with self._engine.connect() as conn:
            return [(r.contract_id, r.period) for r in await conn.execute(query)]

    async def adjustments(
        self, contract_id: str, period: str, *, after: int = 0, limit: int | None = None
    ) -> list[Adjustment]:
        """A final period's adjustments, oldest first (those after the id `after`, at most `limit`)."""
        a = tables.adjustments.c
        query = (
            select(a.id, a.total_delta, a.lines, a.reason, a.created_at, a.statement)
            .where(a.contract_id == contract_id, a.period == period, a.id > after)
            .order_by(a.id)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            Adjustment(
                id=row.id,
                total_delta=row.total_delta,
                lines=tuple((line["term_id"], Decimal(line["delta"])) for line in row.lines),
                reason=row.reason,
                created_at=row.created_at,
                total_after=row.statement["total"],
            )
            for row in rows
        ]

    async def adjustment_statements(self, contract_id: str, period: str) -> list[dict[str, Any]]:
        """The recomputed statement behind each adjustment, oldest first."""
        a = tables.adjustments.c
        query = select(a.statement).where(a.contract_id == contract_id, a.period == period).order_by(a.id)
        async with self._engine.connect() as conn:
            return list((await conn.execute(query)).scalars())

    async def add_adjustment(
        self,
        contract_id: str,
        period: str,
        expected_count: int,
        total_delta: Decimal,
        lines: list[dict[str, str]],
        reason: str,
        statement: dict[str, Any],
        event: SettlementEvent,
    ) -> bool:
        """Append an adjustment, with its `statement.adjusted` event, unless another one was added since
        the caller looked (`expected_count`): concurrent reconciliations of one statement record each
        change once."""
        async with self._engine.begin() as conn:
            await conn.execute(
                select(func.pg_advisory_xact_lock(func.hashtextextended(f"adj:{contract_id}:{period}", 0)))
            )
            a = tables.adjustments.c
            count = (
                await conn.execute(
                    select(func.count()).where(a.contract_id == contract_id, a.period == period)
                )
            ).scalar_one()
            if count != expected_count:
                return False
            adjustment_id = (
                await conn.execute(
                    insert(tables.adjustments)
                    .values(
                        contract_id=contract_id,
                        period=period,
                        total_delta=total_delta,
                        lines=lines,
                        reason=reason,
                        statement=statement,
                    )
                    .returning(tables.adjustments.c.id)
                )
            ).scalar_one()
            await outbox.record(conn, event.with_data(adjustment_id=adjustment_id))
        return True

    async def note_period_state(
        self, contract_id: str, period: str, state: str | None, event: SettlementEvent | None
    ) -> bool:
        """Remember a period's announced state; when it changed to one worth announcing, write its event
        in the same transaction (several replicas noticing the change write it once). Nothing is written
        once the period is final: the state was computed before a finalize that has committed since, and
        `statement.ready` must never follow `statement.finalized`. The period's lock (finalize takes it
        too) orders the two: whichever takes it second sees the other's commit."""
        async with self._engine.begin() as conn:
            await _lock_period(conn, contract_id, period)
            f = tables.final_statements.c
            final = select(f.period).where(f.contract_id == contract_id, f.period == period)
            if (await conn.execute(final)).first() is not None:
                return False
            values = pg_insert(tables.period_states).values(
                contract_id=contract_id, period=period, state=state
            )
            changed = await conn.execute(
                values.on_conflict_do_update(
                    index_elements=["contract_id", "period"],
                    set_={"state": values.excluded.state, "changed_at": func.now()},
                    where=tables.period_states.c.state.is_distinct_from(values.excluded.state),
                ).returning(tables.period_states.c.state)
            )
            if changed.first() is None or event is None:
                return False
            await outbox.record(conn, event)
        return True

    # --- audit -----------------------------------------------------------------------------------

    async def audit_trail(
        self, contract_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[dict[str, Any]]:
        a = tables.audit_log.c
        query = (
            select(tables.audit_log)
            .where(a.contract_id == contract_id, a.seq > after_seq)
            .order_by(a.seq)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            {
                "seq": row.seq,
                "at": row.at.isoformat(),
                "action": row.action,
                "period": row.period,
                "by": {"tenant": row.tenant, "role": row.role, "key_id": row.key_id},
                "previous": row.previous,
                "current": row.current,
            }
            for row in rows
        ]


def _versions() -> Any:
    """Contract versions with their contract's creation time (for `StoredContract`)."""
    c, v = tables.contracts.c, tables.contract_versions.c
    return select(v.document, v.version, c.created_at, v.created_at.label("updated_at")).join(
        tables.contracts, c.id == v.contract_id
    )


def _stored(row: Any) -> StoredContract:
    return StoredContract(load_contract(row.document), row.version, row.created_at, row.updated_at)


async def _document(conn: AsyncConnection, contract_id: str, version: int) -> dict[str, Any] | None:
    v = tables.contract_versions.c
    query = select(v.document).where(v.contract_id == contract_id, v.version == version)
    return (await conn.execute(query)).scalar_one_or_none()


async def _inputs(conn: AsyncConnection, contract_id: str, period: str) -> dict[str, str] | None:
    p = tables.period_inputs.c
    query = select(p.inputs).where(p.contract_id == contract_id, p.period == period)
    return (await conn.execute(query)).scalar_one_or_none()


async def _lock_period(conn: AsyncConnection, contract_id: str, period: str) -> None:
    """Finalize and the period-state note of one period, one at a time: taken first in the transaction
    (before it writes, so before it has a transaction id), the one that waits then also comes later in
    the feed (docs/decisions/0007-commit-order.md)."""
    key = func.hashtextextended(f"period:{contract_id}:{period}", 0)
    await conn.execute(select(func.pg_advisory_xact_lock(key)))


async def _ask_recheck(conn: AsyncConnection, contract_id: str, period: str, reason: str) -> None:
    f = tables.final_statements.c
    await conn.execute(
        update(tables.final_statements)
        .where(f.contract_id == contract_id, f.period == period)
        .values(rechecked_at=None, recheck_requests=f.recheck_requests + 1, recheck_reason=reason)
    )


async def _audit(
    conn: AsyncConnection,
    contract_id: str,
    action: str,
    actor: Identity,
    previous: Any,
    current: Any,
    *,
    period: str | None = None,
) -> None:
    await conn.execute(
        insert(tables.audit_log).values(
            contract_id=contract_id,
            action=action,
            period=period,
            tenant=actor.tenant,
            role=actor.role,
            key_id=actor.key_id,
            previous=previous,
            current=current,
        )
    )
