"""Reads for the HTTP API: cells of a range, per-facility sums of many ranges at once, and what became
of one event."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncEngine

from kpi_engine.adapters import tables
from kpi_engine.domain.catalogue import Aggregation, KpiDefinition
from kpi_engine.domain.cells import Cell, CellKey
from kpi_engine.domain.completeness import Watermark
from kpi_engine.domain.query import FacilitySum, UptimeFacts
from kpi_engine.domain.uptime import Outage


@dataclass(slots=True)
class FeedActivity:
    newest_event_time: datetime
    events_by_day: dict[date, int]


@dataclass(frozen=True, slots=True)
class SumRequest:
    kpi: KpiDefinition
    start: date
    end: date  # exclusive
    dimension: str | None


_RANGES = """unnest(CAST(:kpis AS text[]), CAST(:dimensions AS text[]), CAST(:starts AS date[]),
        CAST(:ends AS date[])) WITH ORDINALITY AS r(kpi, dimension, first_day, end_day, idx)"""
_IN_RANGE = """c.tenant = :tenant AND c.kpi = r.kpi AND c.facility = ANY(CAST(:facilities AS text[]))
            AND c.day >= r.first_day AND c.day < r.end_day
            AND (r.dimension IS NULL OR c.dimension = r.dimension)"""
# Per range, sums per facility and dimension value: each range is an index range scan of the primary
# key (tenant, kpi, facility, day, …), so the cost follows the days asked for, not the table's size.
_SUMS = text(
    f"""SELECT r.idx, s.facility, s.dimension, s.numerator, s.denominator, s.sample_size, s.days
    FROM {_RANGES}
    CROSS JOIN LATERAL (
        SELECT c.facility, c.dimension, sum(c.numerator) AS numerator, sum(c.denominator) AS denominator,
            sum(c.sample_size) AS sample_size, count(*) AS days
        FROM cells c WHERE {_IN_RANGE}
        GROUP BY c.facility, c.dimension
    ) s"""
)
# A latest-snapshot KPI: each facility's last cell in the range.
_LATEST = text(
    f"""SELECT r.idx, s.facility, s.dimension, s.numerator, s.denominator, s.sample_size, 1 AS days
    FROM {_RANGES}
    CROSS JOIN LATERAL (
        SELECT DISTINCT ON (c.facility) c.facility, c.dimension, c.numerator, c.denominator, c.sample_size
        FROM cells c WHERE {_IN_RANGE}
        ORDER BY c.facility, c.day DESC
    ) s"""
)


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
        c = tables.cells.c
        query = select(tables.cells).where(
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

    async def facility_sums(
        self, tenant: str, facilities: Collection[str], requests: Sequence[SumRequest]
    ) -> list[list[FacilitySum]]:
        """For each request, its per-facility sums: at most two statements whatever the number of
        requests, one row per facility and dimension value whatever the length of the range."""
        results: list[list[FacilitySum]] = [[] for _ in requests]
        latest = [i for i, r in enumerate(requests) if r.kpi.aggregation is Aggregation.LATEST_RATIO]
        summed = [i for i, r in enumerate(requests) if r.kpi.aggregation is not Aggregation.LATEST_RATIO]
        async with self._engine.connect() as conn:
            for statement, indexes in ((_SUMS, summed), (_LATEST, latest)):
                if not indexes:
                    continue
                chosen = [requests[i] for i in indexes]
                rows = await conn.execute(
                    statement,
                    {
                        "tenant": tenant,
                        "facilities": sorted(facilities),
                        "kpis": [r.kpi.name for r in chosen],
                        "dimensions": [r.dimension for r in chosen],
                        "starts": [r.start for r in chosen],
                        "ends": [r.end for r in chosen],
                    },
                )
                for row in rows:
                    results[indexes[row.idx - 1]].append(
                        FacilitySum(
                            row.facility,
                            row.dimension,
                            row.numerator,
                            row.denominator,
                            int(row.sample_size),
                            int(row.days),
                        )
                    )
        return results

    async def uptime_facts(
        self, tenant: str, facilities: Collection[str], since: datetime, until: datetime
    ) -> UptimeFacts:
        """The (facility, system) pairs the facilities' standing unplanned outages name, whatever their
        dates (retracting an outage deletes its row), and the outages touching [since, until): now's
        local day so far. Outages are few beside events; the outages_by_system index serves both."""
        o = tables.outages.c
        scope = (o.tenant == tenant, o.facility.in_(sorted(facilities)))
        named = select(o.facility, o.system).where(*scope).distinct()
        touching = select(o.facility, o.system, o.started_at, o.ended_at).where(
            *scope, o.started_at < until, o.ended_at > since
        )
        today: dict[tuple[str, str], list[Outage]] = {}
        async with self._engine.connect() as conn:
            systems = frozenset((r.facility, r.system) for r in await conn.execute(named))
            for r in await conn.execute(touching):
                today.setdefault((r.facility, r.system), []).append(Outage(r.started_at, r.ended_at))
        return UptimeFacts(systems, today)

    async def watermarks(self, tenant: str, facilities: Collection[str]) -> dict[tuple[str, str], Watermark]:
        """The declaration in force per facility and feed: the latest `through` (ties: the latest
        recorded)."""
        d = tables.feed_declarations.c
        query = (
            select(d.facility, d.feed, d.through, d.source, d.id, d.declared_at, d.recorded_at)
            .where(d.tenant == tenant, d.facility.in_(sorted(facilities)))
            .order_by(d.facility, d.feed, d.through.desc(), d.recorded_at.desc(), d.source, d.id)
            .ext(distinct_on(d.facility, d.feed))
        )
        async with self._engine.connect() as conn:
            rows = await conn.execute(query)
            return {
                (r.facility, r.feed): Watermark(r.through, r.source, r.id, r.declared_at, r.recorded_at)
                for r in rows
            }

    async def feed_activity(
        self, tenant: str, facilities: Collection[str], since: date
    ) -> dict[tuple[str, str], FeedActivity]:
        """Per facility and feed: the newest event time ever seen and the events per local day from
        `since` on."""
        a = tables.feed_activity.c
        scope = (a.tenant == tenant, a.facility.in_(sorted(facilities)))
        newest = select(a.facility, a.feed, func.max(a.newest_event_time).label("newest")).where(*scope)
        recent = select(a.facility, a.feed, a.day, a.events, a.newest_event_time).where(
            *scope, a.day >= since
        )
        found: dict[tuple[str, str], FeedActivity] = {}
        async with self._engine.connect() as conn:
            for seen in await conn.execute(newest.group_by(a.facility, a.feed)):
                found[(seen.facility, seen.feed)] = FeedActivity(seen.newest, {})
            # A feed's first events may be recorded between the two statements: the day row says enough.
            for day in await conn.execute(recent.order_by(a.facility, a.feed, a.day)):
                activity = found.setdefault((day.facility, day.feed), FeedActivity(day.newest_event_time, {}))
                activity.newest_event_time = max(activity.newest_event_time, day.newest_event_time)
                activity.events_by_day[day.day] = int(day.events)
        return found

    async def event_outcome(self, tenant: str, source: str, id_: str) -> dict[str, Any] | None:
        async with self._engine.connect() as conn:
            stored = (
                await conn.execute(
                    select(tables.events).where(
                        tables.events.c.tenant == tenant,
                        tables.events.c.source == source,
                        tables.events.c.id == id_,
                    )
                )
            ).first()
            if stored is not None:
                conflicts = (
                    await conn.execute(
                        select(func.coalesce(func.sum(tables.conflicts.c.deliveries), 0)).where(
                            tables.conflicts.c.tenant == tenant,
                            tables.conflicts.c.source == source,
                            tables.conflicts.c.id == id_,
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
                    select(tables.dead_letters)
                    .where(
                        tables.dead_letters.c.tenant == tenant,
                        tables.dead_letters.c.source == source,
                        tables.dead_letters.c.id == id_,
                    )
                    .order_by(tables.dead_letters.c.recorded_at.desc())
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
