"""HTTP routes of the KPI engine (SPEC §4 event lookup, §5 query API).

Consumes: the gateway-signed identity; reads stored events and KPI cells. Produces: JSON answers with
every number a decimal string. A tenant sees only its own facilities; another facility is 404.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from kpi_engine.adapters.queries import PostgresKpiReader, SumRequest
from kpi_engine.domain.calendar import Granularity, TenantCalendar, buckets
from kpi_engine.domain.catalogue import CATALOGUE, KpiDefinition
from kpi_engine.domain.query import PeriodValue, period_value_from_sums, rolling_window
from kpi_engine.entrypoints.params import date_range, day_boundary, dimension_value, invalid_at, window_days
from vr_shared.auth import caller_with_role
from vr_shared.identity import Identity
from vr_shared.web import Problem

router = APIRouter()

KpiReader = Annotated[
    Identity, Depends(caller_with_role({"ops", "tenant_admin", "billing", "platform_admin"}))
]
EventInspector = Annotated[
    Identity, Depends(caller_with_role({"pipeline", "ops", "tenant_admin", "platform_admin"}))
]


class ReadingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    kpi: str
    start: date = Field(alias="from")
    end: date = Field(alias="to")
    dimension: str | None = None


class ReadingsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    facility: list[str] | None = None
    readings: list[ReadingRequest] = Field(min_length=1, max_length=500)


async def _reader(request: Request) -> PostgresKpiReader:
    reader: PostgresKpiReader = request.app.state.reader
    return reader


Reader = Annotated[PostgresKpiReader, Depends(_reader)]


@router.get("/v1/events/{source}/{event_id}", summary="What became of an event")
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


@router.get("/v1/kpis", summary="The KPI catalogue")
async def catalogue(caller: KpiReader) -> dict[str, Any]:
    return {
        "items": [
            {
                "kpi": k.name,
                "unit": k.unit,
                "definition": k.definition,
                "maturation_days": k.maturation_days,
                "dimension": k.dimension,
                "aggregation": k.aggregation.value,
            }
            for k in CATALOGUE.values()
        ]
    }


@router.get("/v1/kpis/{kpi}/values", summary="A KPI per bucket over a period")
async def values(
    kpi: str,
    caller: KpiReader,
    reader: Reader,
    from_: Annotated[str, Query(alias="from")],
    to: str,
    facility: Annotated[list[str] | None, Query()] = None,
    granularity: Granularity = Granularity.DAY,
    dimension: str | None = None,
) -> dict[str, Any]:
    definition, facilities, calendar = _scope(kpi, facility, caller)
    first, end = date_range(from_, to, calendar)
    value_of = dimension_value(definition, dimension)
    requests = [
        SumRequest(definition, start, stop, value_of) for start, stop in buckets(first, end, granularity)
    ]
    points = await _values(reader, caller.tenant, facilities, requests, calendar)
    return _answer(definition, granularity.value, facilities, value_of, points, calendar)


@router.get("/v1/kpis/{kpi}/rolling", summary="A KPI over a rolling window of days")
async def rolling_value(
    kpi: str,
    caller: KpiReader,
    reader: Reader,
    window: str = "30d",
    at: str | None = None,
    facility: Annotated[list[str] | None, Query()] = None,
    dimension: str | None = None,
) -> dict[str, Any]:
    definition, facilities, calendar = _scope(kpi, facility, caller)
    days = window_days(window)
    now = datetime.now(UTC)
    at_day = day_boundary("at", at, calendar, end=False) if at else calendar.local_date(now)
    value_of = dimension_value(definition, dimension)
    request = SumRequest(definition, *rolling_window(days, at_day), value_of)
    points = await _values(reader, caller.tenant, facilities, [request], calendar, now)
    return _answer(definition, f"{days}d", facilities, value_of, points, calendar)


async def _values(
    reader: PostgresKpiReader,
    tenant: str,
    facilities: list[str],
    requests: list[SumRequest],
    calendar: TenantCalendar,
    now: datetime | None = None,
) -> list[PeriodValue]:
    """Each request's value from per-facility sums the database computes: O(facilities) rows each."""
    sums = await reader.facility_sums(tenant, facilities, requests)
    at = now or datetime.now(UTC)
    return [
        period_value_from_sums(r.kpi, found, facilities, r.start, r.end, r.dimension, calendar, at)
        for r, found in zip(requests, sums, strict=True)
    ]


@router.post("/v1/kpis/readings", summary="Many KPI values at once (each over its own date range)")
async def readings(body: ReadingsRequest, caller: KpiReader, reader: Reader) -> dict[str, Any]:
    """For callers that need many values together (settlement reads every KPI of a contract period
    in one request): one answer per reading, in order, each shaped like a `values` point."""
    facilities, calendar = _facilities(body.facility, caller), TenantCalendar.of(caller.timezone)
    requests = []
    for index, item in enumerate(body.readings):
        definition = CATALOGUE.get(item.kpi)
        if definition is None:
            raise _invalid_reading(index, "kpi", f"{item.kpi!r} is not in the catalogue (GET /v1/kpis)")
        if item.end <= item.start:
            raise _invalid_reading(index, "to", "to must be after from (from is inclusive, to exclusive)")
        if item.dimension is not None and definition.dimension is None:
            raise _invalid_reading(index, "dimension", f"{definition.name} has no dimension")
        requests.append(SumRequest(definition, item.start, item.end, item.dimension))
    points = await _values(reader, caller.tenant, facilities, requests, calendar)
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


def _invalid_reading(index: int, field: str, message: str) -> Problem:
    return invalid_at(f"$.readings[{index}].{field}", message, title="Invalid reading")


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
    return definition, _facilities(requested, caller), TenantCalendar.of(caller.timezone)


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
    points: Sequence[PeriodValue],
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


def _point(p: PeriodValue, calendar: TenantCalendar) -> dict[str, Any]:
    return {
        "start": calendar.day_start(p.start).isoformat(),
        "end": calendar.day_start(p.end).isoformat(),
        "value": _decimal(p.value),
        "numerator": _decimal(p.numerator),
        "denominator": _decimal(p.denominator),
        "sample_size": str(p.sample_size),
        "status": p.status,
    }


def _decimal(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")
