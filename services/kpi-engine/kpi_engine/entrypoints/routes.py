"""HTTP routes of the KPI engine (SPEC §4 event lookup, §5 query API).

Consumes: the gateway-signed identity; reads stored events and KPI cells. Produces: JSON answers with
every number a decimal string. A tenant sees only its own facilities; another facility is 404.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from kpi_engine.adapters.queries import PostgresKpiReader
from kpi_engine.domain.calendar import Granularity, TenantCalendar
from kpi_engine.domain.catalogue import CATALOGUE, KpiDefinition
from kpi_engine.domain.query import PeriodValue, rolling, rolling_window, series
from kpi_engine.entrypoints.params import date_range, day_boundary, dimension_value, window_days
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
    cells = await reader.cells(caller.tenant, definition.name, facilities, first, end, value_of)
    points = series(
        definition, cells, facilities, first, end, granularity, value_of, calendar, datetime.now(UTC)
    )
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
    cells = await reader.cells(
        caller.tenant, definition.name, facilities, *rolling_window(days, at_day), value_of
    )
    point = rolling(definition, cells, facilities, days, at_day, value_of, calendar, now)
    return _answer(definition, f"{days}d", facilities, value_of, [point], calendar)


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
    return definition, facilities, TenantCalendar.of(caller.timezone)


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
        "values": [
            {
                "start": calendar.day_start(p.start).isoformat(),
                "end": calendar.day_start(p.end).isoformat(),
                "value": _decimal(p.value),
                "numerator": _decimal(p.numerator),
                "denominator": _decimal(p.denominator),
                "sample_size": str(p.sample_size),
                "status": p.status,
            }
            for p in points
        ],
    }


def _decimal(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")
