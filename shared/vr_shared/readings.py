"""The KPI values contract between the KPI engine and whoever reads it (settlement, dashboards, the
public API): one place for the shapes, so both sides agree by construction (docs/kpis.md).

`POST /v1/kpis/readings` takes `ReadingsRequest` and answers `ReadingsAnswer`; the values and rolling
queries answer `KpiValues`. Every number is a decimal string; `value` is null when nothing was measured.
"""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field


class ReadingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    kpi: str
    start: date = Field(alias="from")
    end: date = Field(alias="to", description="exclusive")
    dimension: str | None = Field(default=None, description="a value of the KPI's dimension")


class ReadingsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    facility: list[str] | None = Field(
        default=None, description="the facilities summed; all of the caller's by default"
    )
    readings: list[ReadingRequest] = Field(min_length=1, max_length=500)


class MissingFeedAnswer(BaseModel):
    """A facility's feed not declared complete through the end of a value."""

    facility: str
    feed: str
    complete_through: str | None


class KpiPoint(BaseModel):
    """One KPI value over one range, with what it is made of and whether its data is complete."""

    start: str
    end: str
    value: str | None
    numerator: str | None
    denominator: str | None
    sample_size: str
    status: str = Field(description="provisional until the KPI's maturation has passed, then mature")
    complete: bool
    missing: list[MissingFeedAnswer]


class Reading(KpiPoint):
    kpi: str
    unit: str
    dimension: dict[str, str]


class ReadingsAnswer(BaseModel):
    facilities: list[str]
    readings: list[Reading]


class KpiValues(BaseModel):
    kpi: str
    unit: str
    granularity: str
    facilities: list[str]
    dimension: dict[str, str]
    values: list[KpiPoint]
