"""Gauges for dashboards, refreshed periodically: each KPI's rolling 30-day value per facility, and each
facility's feed completeness watermark.

Produces `vr_kpi_value{tenant,kpi,facility,dimension}` from the cells (O(days × facilities)), in each
tenant's calendar as last seen on its events, and
`vr_kpi_feed_complete_through_timestamp_seconds{tenant,facility,feed}` from the declarations in force.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from kpi_engine.adapters import tables
from kpi_engine.domain.calendar import TenantCalendar
from kpi_engine.domain.catalogue import CATALOGUE
from kpi_engine.domain.cells import Cell, CellKey
from kpi_engine.domain.query import UptimeFacts, rolling, systems_of
from kpi_engine.domain.uptime import Outage
from kpi_engine.entrypoints.deps import Clock, system_clock
from kpi_engine.metrics import FEED_COMPLETE_THROUGH, KPI_VALUE

WINDOW_DAYS = 30
log = logging.getLogger(__name__)


class KpiGauges:
    def __init__(
        self,
        engine: AsyncEngine,
        timezones: dict[str, str],
        *,
        interval_s: float = 30,
        clock: Clock = system_clock,
    ) -> None:
        self._engine, self._timezones, self._interval_s, self._clock = engine, timezones, interval_s, clock

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except (OperationalError, DBAPIError, OSError) as exc:  # the consumer reports the outage
                log.debug("gauge refresh skipped", extra={"error": type(exc).__name__})
            await asyncio.sleep(self._interval_s)

    async def refresh(self) -> None:
        now = self._clock()
        # A day's margin either side of any time zone; each tenant's own window is applied below.
        since = now.date() - timedelta(days=WINDOW_DAYS + 1)
        by_tenant: dict[str, dict[CellKey, Cell]] = defaultdict(dict)
        # Outages that may touch any tenant's current local day: its uptime so far counts them.
        todays: dict[str, dict[tuple[str, str], list[Outage]]] = defaultdict(lambda: defaultdict(list))
        o = tables.outages.c
        d = tables.feed_declarations.c
        async with self._engine.connect() as conn:
            watermarks = await conn.execute(
                select(d.tenant, d.facility, d.feed, func.max(d.through).label("through")).group_by(
                    d.tenant, d.facility, d.feed
                )
            )
            for w in watermarks:
                FEED_COMPLETE_THROUGH.labels(w.tenant, w.facility, w.feed).set(w.through.timestamp())
            for r in await conn.execute(select(tables.cells).where(tables.cells.c.day >= since)):
                by_tenant[r.tenant][CellKey(r.kpi, r.facility, r.day, r.dimension)] = Cell(
                    r.numerator, r.denominator, r.sample_size
                )
            recent = select(o.tenant, o.facility, o.system, o.started_at, o.ended_at).where(
                o.started_at < now, o.ended_at > now - timedelta(days=2)
            )
            for r in await conn.execute(recent):
                todays[r.tenant][(r.facility, r.system)].append(Outage(r.started_at, r.ended_at))
        for tenant, cells in by_tenant.items():
            calendar = TenantCalendar.of(self._timezones.get(tenant, "UTC"))
            today = calendar.local_date(now)
            uptime = UptimeFacts(systems_of(cells), todays[tenant])
            for kpi_name, facility, dimension in {(k.kpi, k.facility, k.dimension) for k in cells}:
                kpi = CATALOGUE[kpi_name]
                point = rolling(
                    kpi,
                    cells,
                    {facility},
                    WINDOW_DAYS,
                    today,
                    dimension if kpi.dimension else None,
                    calendar,
                    now,
                    uptime,
                )
                if point.value is not None:
                    KPI_VALUE.labels(tenant, kpi_name, facility, dimension).set(float(point.value))
