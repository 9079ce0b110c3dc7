"""Values from per-facility sums (what the database groups) equal values from the day cells."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from kpi_engine.domain.calendar import TenantCalendar
from kpi_engine.domain.catalogue import CATALOGUE
from kpi_engine.domain.cells import Cell, CellKey
from kpi_engine.domain.query import (
    UptimeFacts,
    facility_sums,
    period_value,
    period_value_from_sums,
    summed_days,
    systems_of,
)
from kpi_engine.domain.uptime import Outage

CALENDAR = TenantCalendar.of("America/New_York")  # March and November have 23- and 25-hour days
FACILITIES = ("north", "south", "east")
FIRST = date(2026, 3, 1)
NOW = datetime(2027, 6, 1, tzinfo=UTC)

amounts = st.decimals(min_value=0, max_value=2000, places=2, allow_nan=False, allow_infinity=False)


@st.composite
def cell_tables(draw: st.DrawFn) -> dict[CellKey, Cell]:
    cells: dict[CellKey, Cell] = {}
    for _ in range(draw(st.integers(0, 40))):
        kpi = draw(st.sampled_from(["clean_claim_rate", "uptime_pct", "days_in_ar", "cost_total"]))
        facility = draw(st.sampled_from(FACILITIES))
        day = FIRST + timedelta(days=draw(st.integers(0, 300)))
        dimension = {"uptime_pct": draw(st.sampled_from(["ehr", "pacs"])), "cost_total": "operating"}.get(
            kpi, ""
        )
        if kpi == "uptime_pct":
            scheduled = CALENDAR.day_minutes(day)
            down = draw(st.decimals(min_value=0, max_value=scheduled, places=1, allow_nan=False))
            cell = Cell(scheduled - down, scheduled, draw(st.integers(1, 3)))
        elif kpi == "days_in_ar":
            cell = Cell(draw(amounts), draw(amounts.filter(lambda a: a > 0)), 1)
        elif kpi == "cost_total":
            cell = Cell(draw(amounts), Decimal(0), draw(st.integers(1, 5)))
        else:
            denominator = draw(st.integers(1, 50))
            cell = Cell(Decimal(draw(st.integers(0, denominator))), Decimal(denominator), denominator)
        cells[CellKey(kpi, facility, day, dimension)] = cell
    return cells


@st.composite
def moments(draw: st.DrawFn) -> datetime:
    """Long after every cell (all buckets closed), or any minute among them (open buckets)."""
    if draw(st.booleans()):
        return NOW
    return datetime(2026, 3, 1, 5, tzinfo=UTC) + timedelta(minutes=draw(st.integers(0, 350 * 1440)))


@st.composite
def todays_outages(draw: st.DrawFn, now: datetime) -> dict[tuple[str, str], list[Outage]]:
    """Unplanned outages around `now` (some reported to end after it) on a few facility/system pairs."""
    found: dict[tuple[str, str], list[Outage]] = {}
    for _ in range(draw(st.integers(0, 4))):
        pair = (draw(st.sampled_from(FACILITIES)), draw(st.sampled_from(["ehr", "pacs", "lab"])))
        start = now + timedelta(minutes=draw(st.integers(-30 * 60, 60)))
        end = start + timedelta(minutes=draw(st.integers(1, 20 * 60)))
        found.setdefault(pair, []).append(Outage(start, end))
    return found


@settings(max_examples=300, deadline=None)
@given(
    cells=cell_tables(),
    kpi=st.sampled_from(["clean_claim_rate", "uptime_pct", "days_in_ar", "cost_total"]),
    start_offset=st.integers(0, 200),
    length=st.integers(1, 150),
    chosen=st.sets(st.sampled_from(FACILITIES), min_size=1),
    dimension=st.sampled_from([None, "ehr", "operating"]),
    data=st.data(),
)
def test_sums_give_the_same_value_as_cells(
    cells: dict[CellKey, Cell],
    kpi: str,
    start_offset: int,
    length: int,
    chosen: set[str],
    dimension: str | None,
    data: st.DataObject,
) -> None:
    definition = CATALOGUE[kpi]
    if definition.dimension is None:
        dimension = None
    start = FIRST + timedelta(days=start_offset)
    end = start + timedelta(days=length)
    now = data.draw(moments())
    facts = UptimeFacts(systems_of(cells), data.draw(todays_outages(now)))
    in_facilities = {k: c for k, c in cells.items() if k.facility in chosen}
    expected = period_value(definition, cells, chosen, start, end, dimension, CALENDAR, now, facts)
    summed = summed_days(definition, start, end, CALENDAR, now)
    sums = facility_sums(definition, in_facilities, *summed, dimension)
    from_sums = period_value_from_sums(definition, sums, chosen, start, end, dimension, CALENDAR, now, facts)
    assert from_sums == expected
