"""Rebuilding a tenant's cells from its stored events (docs/operations.md, "Rebuilding KPIs").

Comparing reads the stored effective events and the stored cells in one snapshot (REPEATABLE READ), so
the two agree in time however long the read takes, and streams the events through the from-scratch
computation (kpi_engine.domain.computation) — the same code the "incremental equals recomputed" tests
compare the engine with — each admission and discharge with its place in the engine's record order (its
stay row's `received`), which decides a stay's standing discharge; a cancelled discharge (its event
marked retracted, its stay row kept and marked cancelled) is streamed too, as cancelled: while it is its
stay's last received, the stay has no discharge.

Correcting runs while the engine records: an additive cell gets the difference between what was
rebuilt and what was stored at the snapshot as a delta (deltas commute with the engine's own); a
recomputed cell (uptime, days in A/R, readmissions) is recomputed now, under its scope's lock, by the
engine's own recomputation — so a definition fix reaches its index rows too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from kpi_engine.adapters import tables
from kpi_engine.adapters.effect_writes import lock_scopes, write_effects
from kpi_engine.domain.calendar import TenantCalendar
from kpi_engine.domain.cells import Cell, CellKey
from kpi_engine.domain.computation import DAYS_IN_AR, CellComputation
from kpi_engine.domain.effects import Effects
from kpi_engine.domain.readmissions import KPI as READMISSION
from kpi_engine.domain.uptime import KPI as UPTIME
from vr_shared.events import validate_event

_READ_CHUNK = 5_000


@dataclass(frozen=True, slots=True)
class Difference:
    key: CellKey
    stored: Cell | None
    rebuilt: Cell | None


@dataclass
class Comparison:
    events: int = 0
    cells: int = 0
    differences: list[Difference] = field(default_factory=list)


class PostgresRebuild:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def zone_of(self, tenant: str) -> str | None:
        async with self._engine.connect() as conn:
            zone = await conn.scalar(
                select(tables.tenant_zones.c.timezone).where(tables.tenant_zones.c.tenant == tenant)
            )
        return None if zone is None else str(zone)

    async def compare(
        self,
        tenant: str,
        calendar: TenantCalendar,
        *,
        kpi: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> Comparison:
        """The tenant's cells as its stored events give them, against the stored cells (one snapshot)."""
        computation = CellComputation(calendar)
        e, c, s = tables.events.c, tables.cells.c, tables.stays.c
        async with self._engine.connect() as conn:
            await conn.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():
                # An admission's or a discharge's place in the record order is its stay row's.
                events = await conn.stream(
                    select(e.payload, s.received, s.cancelled)
                    .select_from(
                        tables.events.outerjoin(
                            tables.stays, and_(s.tenant == e.tenant, s.source == e.source, s.id == e.id)
                        )
                    )
                    .where(
                        e.tenant == tenant,
                        or_(e.retracted.is_(False), s.cancelled.is_(True)),
                        e.type != "event.retracted",
                    )
                    .execution_options(yield_per=_READ_CHUNK)
                )
                async for chunk in events.partitions():
                    for row in chunk:
                        event = validate_event(row.payload)
                        computation.take(event, row.received, cancelled=bool(row.cancelled))
                    if progress is not None:
                        progress(computation.events)
                cells = select(tables.cells).where(c.tenant == tenant)
                rows = await conn.execute(cells if kpi is None else cells.where(c.kpi == kpi))
                stored = {
                    CellKey(r.kpi, r.facility, r.day, r.dimension): Cell(
                        r.numerator, r.denominator, r.sample_size
                    )
                    for r in rows
                }
        rebuilt = {key: cell for key, cell in computation.cells().items() if kpi is None or key.kpi == kpi}
        differences = [
            Difference(key, stored.get(key), rebuilt.get(key))
            for key in sorted(set(stored) | set(rebuilt))
            if stored.get(key) != rebuilt.get(key)
        ]
        return Comparison(computation.events, len(rebuilt), differences)

    async def correct(self, tenant: str, calendar: TenantCalendar, differences: list[Difference]) -> int:
        """Bring the differing cells to what the events give, while the engine keeps recording. Returns
        how many cells were written."""
        if not differences:
            return 0
        effects = Effects()
        readmission_days: list[CellKey] = []
        for difference in differences:
            key = difference.key
            if key.kpi == UPTIME:
                effects.uptime_days[(tenant, key.facility, key.dimension)].add(key.day)
            elif key.kpi == DAYS_IN_AR:
                effects.ar_days.add((tenant, key.facility, key.day))
            elif key.kpi == READMISSION:
                readmission_days.append(key)
            else:
                delta = Cell()
                delta.add(difference.rebuilt or Cell())
                delta.add(difference.stored or Cell(), -1)
                effects.add(tenant, key, delta, 1)
        async with self._engine.begin() as conn:
            for patient in await self._patients_on(conn, tenant, calendar, readmission_days):
                effects.patients.add((tenant, patient))
            await lock_scopes(conn, effects.recomputed_scopes())
            return await write_effects(conn, effects, {tenant: calendar})

    async def _patients_on(
        self, conn: Any, tenant: str, calendar: TenantCalendar, keys: list[CellKey]
    ) -> set[str]:
        """Patients with a discharge, or an index row, on these readmission cells' days."""
        if not keys:
            return set()
        s, i = tables.stays.c, tables.readmission_index.c
        discharged = [
            and_(
                s.facility == key.facility,
                s.at >= calendar.day_start(key.day),
                s.at < calendar.day_start(key.day + timedelta(days=1)),
            )
            for key in keys
        ]
        indexed = [and_(i.facility == key.facility, i.day == key.day) for key in keys]
        found = await conn.execute(
            select(s.patient).where(s.tenant == tenant, s.type == "encounter.discharged", or_(*discharged))
        )
        patients = {row.patient for row in found}
        found = await conn.execute(select(i.patient).where(i.tenant == tenant, or_(*indexed)))
        return patients | {row.patient for row in found}
