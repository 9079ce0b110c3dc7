"""Catalogue events for KPI tests, written as a hospital would send them (validated on the way)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal

from kpi_engine.domain.calendar import TenantCalendar
from kpi_engine.domain.catalogue import CATALOGUE
from kpi_engine.domain.cells import Cell, CellKey
from kpi_engine.domain.computation import compute_cells
from kpi_engine.domain.query import PeriodValue, period_value
from tests.support.examples import event
from vr_shared.events import Event, validate_event

CALENDAR = TenantCalendar.of("America/New_York")
LATER = datetime(2030, 1, 1, tzinfo=UTC)  # long after every period below: everything mature
_ids = itertools.count(1)


def ev(type_: str, time: str, facility: str = "north", **data: object) -> Event:
    return validate_event(event(type_, facility=facility, time=time, id_=f"k-{next(_ids)}", **data))


def value(
    kpi: str,
    events: Iterable[Event],
    *,
    facilities: Iterable[str] = ("north",),
    start: date = date(2026, 1, 1),
    end: date = date(2026, 2, 1),
    dimension: str | None = None,
    cells: Mapping[CellKey, Cell] | None = None,
) -> PeriodValue:
    computed = compute_cells(events, CALENDAR) if cells is None else cells
    return period_value(CATALOGUE[kpi], computed, set(facilities), start, end, dimension, CALENDAR, LATER)


def d(text: str) -> Decimal:
    return Decimal(text)
