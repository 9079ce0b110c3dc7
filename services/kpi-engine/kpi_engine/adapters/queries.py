"""Reads for the HTTP API: cells of a range, and what became of one event."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from kpi_engine.adapters import tables as t
from kpi_engine.domain.cells import Cell, CellKey


class PostgresKpiReader:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def cells(
        self,
        tenant: str,
        kpi: str,
        facilities: Collection[str],
        first_day: date,
        end_day: date,
        dimension: str | None,
    ) -> dict[CellKey, Cell]:
        c = t.cells.c
        query = select(t.cells).where(
            c.tenant == tenant,
            c.kpi == kpi,
            c.facility.in_(sorted(facilities)),
            c.day >= first_day,
            c.day < end_day,
        )
        if dimension is not None:
            query = query.where(c.dimension == dimension)
        async with self._engine.connect() as conn:
            rows = await conn.execute(query)
            return {
                CellKey(r.kpi, r.facility, r.day, r.dimension): Cell(
                    r.numerator, r.denominator, r.sample_size
                )
                for r in rows
            }

    async def event_outcome(self, tenant: str, source: str, id_: str) -> dict[str, Any] | None:
        async with self._engine.connect() as conn:
            stored = (
                await conn.execute(
                    select(t.events).where(
                        t.events.c.tenant == tenant, t.events.c.source == source, t.events.c.id == id_
                    )
                )
            ).first()
            if stored is not None:
                conflicts = (
                    await conn.execute(
                        select(func.coalesce(func.sum(t.conflicts.c.deliveries), 0)).where(
                            t.conflicts.c.tenant == tenant,
                            t.conflicts.c.source == source,
                            t.conflicts.c.id == id_,
                        )
                    )
                ).scalar_one()
                status = (
                    "retracted"
                    if stored.retracted
                    else "conflict"
                    if conflicts
                    else "duplicate"
                    if stored.duplicates
                    else "stored"
                )
                return {
                    "status": status,
                    "type": stored.type,
                    "facility": stored.facility,
                    "recorded_at": stored.recorded_at.isoformat(),
                    "duplicates": stored.duplicates,
                    "conflicting_deliveries": int(conflicts),
                    "retracted": stored.retracted,
                }
            dead = (
                await conn.execute(
                    select(t.dead_letters)
                    .where(
                        t.dead_letters.c.tenant == tenant,
                        t.dead_letters.c.source == source,
                        t.dead_letters.c.id == id_,
                    )
                    .order_by(t.dead_letters.c.recorded_at.desc())
                    .limit(1)
                )
            ).first()
            if dead is not None:
                return {
                    "status": "dead-lettered",
                    "reason": dead.reason,
                    "recorded_at": dead.recorded_at.isoformat(),
                }
            return None
