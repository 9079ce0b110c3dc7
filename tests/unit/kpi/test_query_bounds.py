"""The bounds of one KPI query: each reading as long as a values query may be, all readings of a request
together, and days the tenant's calendar can place."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from pydantic import ValidationError

from kpi_engine.domain.catalogue import CATALOGUE
from kpi_engine.entrypoints.params import (
    MAX_RANGE_DAYS,
    MAX_READINGS,
    MAX_READINGS_DAYS,
    dimension_value,
    reading_days,
    reading_dimension,
    window_days,
)
from vr_shared.readings import ReadingsRequest
from vr_shared.web import Problem

START = date(2020, 1, 1)


def path_refused(spans: list[tuple[date, date]]) -> str:
    with pytest.raises(Problem) as refused:
        reading_days(spans)
    assert refused.value.status == 422
    return str(refused.value.extra["errors"][0]["path"])


def test_a_reading_spans_at_most_what_a_values_query_may() -> None:
    reading_days([(START, START + timedelta(days=MAX_RANGE_DAYS))])
    longer = (START, START + timedelta(days=MAX_RANGE_DAYS + 1))
    assert path_refused([(START, START + timedelta(days=1)), longer]) == "$.readings[1].to"
    assert path_refused([(START, START)]) == "$.readings[0].to"


def test_the_readings_of_one_request_are_bounded_together() -> None:
    year = (START, START + timedelta(days=366))
    reading_days([year] * MAX_READINGS)  # settlement's longest period, as many times as a request holds
    assert MAX_READINGS_DAYS == MAX_READINGS * 366
    longest = (START, START + timedelta(days=MAX_RANGE_DAYS))
    fit = MAX_READINGS_DAYS // MAX_RANGE_DAYS
    reading_days([longest] * fit)
    assert path_refused([longest] * (fit + 1)) == "$.readings"


def test_the_readings_bound_is_the_shared_contracts() -> None:
    reading = {"kpi": "alos_days", "from": "2026-01-01", "to": "2026-02-01"}
    ReadingsRequest.model_validate({"readings": [reading] * MAX_READINGS})
    with pytest.raises(ValidationError):
        ReadingsRequest.model_validate({"readings": [reading] * (MAX_READINGS + 1)})


def test_days_outside_the_calendar_are_refused_naming_the_field() -> None:
    assert path_refused([(date(1, 1, 1), date(1, 2, 1))]) == "$.readings[0].from"
    assert path_refused([(date(2199, 12, 1), date(9999, 12, 31))]) == "$.readings[0].to"


def refused_at(call: object) -> tuple[str, str]:
    with pytest.raises(Problem) as refused:
        call()  # type: ignore[operator]
    assert refused.value.status == 422
    error = refused.value.extra["errors"][0]
    return str(error["path"]), str(error["message"])


def test_a_reading_refuses_the_dimensions_a_values_query_refuses() -> None:
    uptime, alos = CATALOGUE["uptime_pct"], CATALOGUE["alos_days"]
    # "" is uptime's "no system named" (ALL_SYSTEMS): never a value a caller may ask for.
    for kpi, raw in ((uptime, ""), (uptime, "system:"), (uptime, "category:ehr"), (alos, "ehr")):
        path, message = refused_at(lambda k=kpi, r=raw: reading_dimension(2, k, r))
        query_path, query_message = refused_at(lambda k=kpi, r=raw: dimension_value(k, r))
        assert (path, query_path) == ("$.readings[2].dimension", "$.query.dimension")
        assert message == query_message
    assert reading_dimension(0, uptime, "system:ehr") == dimension_value(uptime, "system:ehr") == "ehr"
    assert reading_dimension(0, uptime, None) is None


def test_a_rolling_window_is_bounded_like_a_values_query() -> None:
    assert window_days("30d") == 30
    assert window_days(f"{MAX_RANGE_DAYS}d") == MAX_RANGE_DAYS
    for raw in (f"{MAX_RANGE_DAYS + 1}d", "9999d", "0d", "30"):
        assert refused_at(lambda r=raw: window_days(r))[0] == "$.query.window"
