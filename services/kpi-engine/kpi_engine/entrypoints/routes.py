"""HTTP routes of the KPI engine: event lookup, KPI queries and feed completeness (docs/kpis.md,
docs/completeness.md).

Consumes: the gateway-signed identity; reads stored events, KPI cells and feed declarations. Produces:
JSON answers with every number a decimal string; each KPI value says whether the feeds behind it are
complete through its end. A tenant sees only its own facilities; another facility is 404.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from kpi_engine.adapters.queries import PostgresKpiReader, SumRequest
from kpi_engine.domain.access import (
    EVENT_INSPECTORS,
    FEED_READERS,
    KPI_READERS,
    READINGS_READERS,
    may_know_kpi,
    may_read_kpi,
    readable_kpis,
)
from kpi_engine.domain.calendar import Granularity, TenantCalendar, buckets
from kpi_engine.domain.catalogue import CATALOGUE, KpiDefinition, feeds_of
from kpi_engine.domain.completeness import MissingFeed, missing_feeds
from kpi_engine.domain.query import (
    PeriodValue,
    UptimeFacts,
    period_value_from_sums,
    rolling_window,
    summed_days,
)
from kpi_engine.domain.uptime import KPI as UPTIME
from kpi_engine.entrypoints.deps import Now, Reader
from kpi_engine.entrypoints.params import (
    date_range,
    day_boundary,
    dimension_value,
    invalid_reading,
    reading_days,
    reading_dimension,
    window_days,
)
from kpi_engine.entrypoints.schemas import FeedPage
from vr_shared.auth import caller_with_role
from vr_shared.identity import Identity
from vr_shared.pages import After, Limit, after_position, decode_cursor, encode_cursor
from vr_shared.readings import KpiValues, ReadingsAnswer, ReadingsRequest
from vr_shared.web import Problem

router = APIRouter()

KpiReader = Annotated[Identity, Depends(caller_with_role(KPI_READERS))]
ReadingsReader = Annotated[Identity, Depends(caller_with_role(READINGS_READERS))]
FeedReader = Annotated[Identity, Depends(caller_with_role(FEED_READERS))]
EventInspector = Annotated[Identity, Depends(caller_with_role(EVENT_INSPECTORS))]


@router.get(
    "/v1/events/{source}/{event_id}",
    operation_id="getEventOutcome",
    tags=["Events"],
    summary="What became of an event",
)
async def event_outcome(source: str, event_id: str, caller: EventInspector, reader: Reader) -> dict[str, Any]:
    outcome = await reader.event_outcome(caller.tenant, source, event_id)
    if outcome is None:
        raise Problem(
            404,
            "Unknown event",
            f"no event {event_id!r} from source {source!r} has been processed yet "
            "(it may still be in flight)",
            type_="/problems/unknown-event",
            outcome="unknown",
        )
    return {"source": source, "id": event_id, **outcome}


@router.get(
    "/v1/kpis",
    operation_id="listKpis",
    tags=["KPIs"],
    summary="The KPI catalogue",
    dependencies=[Depends(caller_with_role(KPI_READERS))],
)
async def catalogue() -> dict[str, Any]:
    return {
        "items": [
            {
                "kpi": k.name,
                "unit": k.unit,
                "definition": k.definition,
                "maturation_days": k.maturation_days,
                "dimension": k.dimension,
                "aggregation": k.aggregation.value,
                "feeds": list(k.feeds),
            }
            for k in CATALOGUE.values()
        ]
    }


@router.get(
    "/v1/kpis/{kpi}/values",
    operation_id="getKpiValues",
    response_model=KpiValues,
    tags=["KPIs"],
    summary="A KPI per bucket over a period",
)
async def values(
    kpi: str,
    caller: KpiReader,
    reader: Reader,
    now: Now,
    from_: Annotated[str, Query(alias="from")],
    to: str,
    facility: Annotated[list[str] | None, Query()] = None,
    granularity: Granularity = Granularity.DAY,
    dimension: str | None = None,
) -> dict[str, Any]:
    definition, facilities, calendar = _scope(kpi, facility, caller)
    first, end = date_range(from_, to, calendar)
    value_of = _readable_dimension(definition, dimension, caller)
    requests = [
        SumRequest(definition, start, stop, value_of) for start, stop in buckets(first, end, granularity)
    ]
    points = await _values(reader, caller.tenant, facilities, requests, calendar, now)
    return _answer(definition, granularity.value, facilities, value_of, points, calendar)


@router.get(
    "/v1/kpis/{kpi}/rolling",
    operation_id="getKpiRolling",
    response_model=KpiValues,
    tags=["KPIs"],
    summary="A KPI over a rolling window of days",
)
async def rolling_value(
    kpi: str,
    caller: KpiReader,
    reader: Reader,
    now: Now,
    window: str = "30d",
    at: str | None = None,
    facility: Annotated[list[str] | None, Query()] = None,
    dimension: str | None = None,
) -> dict[str, Any]:
    definition, facilities, calendar = _scope(kpi, facility, caller)
    days = window_days(window)
    at_day = day_boundary("at", at, calendar, end=False) if at else calendar.local_date(now)
    value_of = _readable_dimension(definition, dimension, caller)
    request = SumRequest(definition, *rolling_window(days, at_day), value_of)
    points = await _values(reader, caller.tenant, facilities, [request], calendar, now)
    return _answer(definition, f"{days}d", facilities, value_of, points, calendar)


Point = tuple[PeriodValue, list[MissingFeed]]


async def _values(
    reader: PostgresKpiReader,
    tenant: str,
    facilities: list[str],
    requests: list[SumRequest],
    calendar: TenantCalendar,
    now: datetime,
) -> list[Point]:
    """Each request's value as of `now` from per-facility sums the database computes (O(facilities) rows
    each), with the facility × feed pairs not declared complete through its end."""
    sums = await reader.facility_sums(tenant, facilities, [_summed(r, calendar, now) for r in requests])
    watermarks = await reader.watermarks(tenant, facilities)
    uptime = await _uptime_facts(reader, tenant, facilities, requests, calendar, now)
    return [
        (
            period_value_from_sums(
                r.kpi, found, facilities, r.start, r.end, r.dimension, calendar, now, uptime
            ),
            missing_feeds(r.kpi, facilities, calendar.day_start(r.end), watermarks),
        )
        for r, found in zip(requests, sums, strict=True)
    ]


def _summed(request: SumRequest, calendar: TenantCalendar, now: datetime) -> SumRequest:
    """The request as the database sums it: an open uptime bucket's whole past days only."""
    start, end = summed_days(request.kpi, request.start, request.end, calendar, now)
    return replace(request, start=start, end=end)


async def _uptime_facts(
    reader: PostgresKpiReader,
    tenant: str,
    facilities: list[str],
    requests: list[SumRequest],
    calendar: TenantCalendar,
    now: datetime,
) -> UptimeFacts:
    """What uptime needs beside the sums (the systems known, now's local day so far); nothing to read
    when no request is uptime."""
    if not any(r.kpi.name == UPTIME for r in requests):
        return UptimeFacts()
    return await reader.uptime_facts(tenant, facilities, calendar.day_start(calendar.local_date(now)), now)


@router.post(
    "/v1/kpis/readings",
    operation_id="readKpis",
    response_model=ReadingsAnswer,
    tags=["KPIs"],
    summary="Many KPI values at once (each over its own date range)",
)
async def readings(body: ReadingsRequest, caller: ReadingsReader, reader: Reader, now: Now) -> dict[str, Any]:
    """For callers that need many values together (settlement reads every KPI of a contract period
    in one request): one answer per reading, in order, each shaped like a `values` point."""
    facilities, calendar = _facilities(body.facility, caller), TenantCalendar.of(caller.timezone)
    reading_days([(item.start, item.end) for item in body.readings])
    requests = []
    for index, item in enumerate(body.readings):
        definition = CATALOGUE.get(item.kpi)
        if definition is None:
            raise invalid_reading(index, "kpi", f"{item.kpi!r} is not in the catalogue (GET /v1/kpis)")
        _ensure_may_know_kpi(definition.name, caller)
        dimension = reading_dimension(index, definition, item.dimension)  # as the values API reads it
        if not may_read_kpi(caller, definition.name, dimension):
            raise _not_granted(definition.name, dimension)
        requests.append(SumRequest(definition, item.start, item.end, dimension))
    points = await _values(reader, caller.tenant, facilities, requests, calendar, now)
    return {
        "facilities": facilities,
        "readings": [
            {
                "kpi": r.kpi.name,
                "unit": r.kpi.unit,
                "dimension": {r.kpi.dimension: r.dimension} if r.kpi.dimension and r.dimension else {},
                **_point(p, calendar),
            }
            for r, p in zip(requests, points, strict=True)
        ],
    }


def _scope(
    kpi: str, requested: list[str] | None, caller: Identity
) -> tuple[KpiDefinition, list[str], TenantCalendar]:
    definition = CATALOGUE.get(kpi)
    if definition is None:
        raise Problem(
            404,
            "Unknown KPI",
            f"{kpi!r} is not in the catalogue (GET /v1/kpis)",
            type_="/problems/unknown-kpi",
        )
    _ensure_may_know_kpi(kpi, caller)
    return definition, _facilities(requested, caller), TenantCalendar.of(caller.timezone)


def _ensure_may_know_kpi(kpi: str, caller: Identity) -> None:
    """A caller limited to some KPIs (a vendor: those its contracts use) meets the others as unknown."""
    if not may_know_kpi(caller, kpi):
        raise _not_granted(kpi, None)


def _readable_dimension(definition: KpiDefinition, raw: str | None, caller: Identity) -> str | None:
    value = dimension_value(definition, raw)
    if not may_read_kpi(caller, definition.name, value):
        raise _not_granted(definition.name, value)
    return value


def _not_granted(kpi: str, dimension: str | None) -> Problem:
    what = repr(kpi) if dimension is None else f"{kpi!r} for {dimension!r}"
    return Problem(404, "Unknown KPI", f"{what} is not a KPI you may read", type_="/problems/unknown-kpi")


def _facilities(requested: list[str] | None, caller: Identity) -> list[str]:
    facilities = sorted(set(requested) if requested else caller.facilities)
    unknown = [f for f in facilities if f not in caller.facilities]
    if unknown or not facilities:
        # Not 403: another tenant's facility must look exactly like one that does not exist.
        raise Problem(
            404,
            "Unknown facility",
            f"no facility {unknown[0] if unknown else ''!r} in this tenant",
            type_="/problems/unknown-facility",
        )
    return facilities


def _answer(
    kpi: KpiDefinition,
    granularity: str,
    facilities: Sequence[str],
    dimension: str | None,
    points: Sequence[Point],
    calendar: TenantCalendar,
) -> dict[str, Any]:
    return {
        "kpi": kpi.name,
        "unit": kpi.unit,
        "granularity": granularity,
        "facilities": list(facilities),
        "dimension": {kpi.dimension: dimension} if kpi.dimension and dimension else {},
        "values": [_point(p, calendar) for p in points],
    }


def _point(point: Point, calendar: TenantCalendar) -> dict[str, Any]:
    p, missing = point
    return {
        "start": calendar.day_start(p.start).isoformat(),
        "end": calendar.day_start(p.end).isoformat(),
        "value": _decimal(p.value),
        "numerator": _decimal(p.numerator),
        "denominator": _decimal(p.denominator),
        "sample_size": str(p.sample_size),
        "status": p.status,
        "complete": not missing,
        "missing": [m.as_json() for m in missing],
    }


def _decimal(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


RECENT_DAYS = 7


@router.get(
    "/v1/feeds",
    operation_id="listFeeds",
    response_model=FeedPage,
    tags=["Feeds"],
    summary="Completeness and recent activity of each facility's feeds",
)
async def feeds(
    caller: FeedReader,
    reader: Reader,
    now: Now,
    facility: Annotated[list[str] | None, Query()] = None,
    limit: Limit = 200,
    after: After = None,
) -> dict[str, Any]:
    """Per facility and feed: the completeness watermark (who declared it and when), the newest event
    time seen and the events of the last days (by the tenant's local day of their time). By facility,
    then feed, a page at a time."""
    facilities, calendar = _facilities(facility, caller), TenantCalendar.of(caller.timezone)
    today = calendar.local_date(now)
    since = today - timedelta(days=RECENT_DAYS - 1)
    watermarks = await reader.watermarks(caller.tenant, facilities)
    activity = await reader.feed_activity(caller.tenant, facilities, since)
    kpis = readable_kpis(caller, frozenset(CATALOGUE))
    slots = [(name, feed) for name in facilities for feed in feeds_of(kpis)]
    slots = after_position(slots, decode_cursor(after), lambda slot: "|".join(slot))
    items = []
    for name, feed in slots[:limit]:
        mark, seen = watermarks.get((name, feed)), activity.get((name, feed))
        by_day = seen.events_by_day if seen else {}
        items.append(
            {
                "facility": name,
                "feed": feed,
                "kpis": [k for k in kpis if feed in CATALOGUE[k].feeds],
                "complete_through": mark.through.isoformat() if mark else None,
                "declared_by": {"source": mark.source, "id": mark.id} if mark else None,
                "declared_at": mark.declared_at.isoformat() if mark else None,
                "recorded_at": mark.recorded_at.isoformat() if mark else None,
                "newest_event_time": seen.newest_event_time.isoformat() if seen else None,
                "recent_events": [
                    {"day": day.isoformat(), "events": by_day.get(day, 0)}
                    for day in (since + timedelta(days=i) for i in range(RECENT_DAYS))
                ],
            }
        )
    more = len(slots) > limit
    return {
        "facilities": facilities,
        "items": items,
        "next": encode_cursor("|".join(slots[limit - 1])) if more else None,
    }
