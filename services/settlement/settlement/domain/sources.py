"""Value sources: where a term parameter's number comes from (docs/contracts.md).

A parameter is a constant (a decimal string), `{"kpi": name, "dimension": {...}}` (the KPI over the
contract's facilities for the period) or `{"input": name}` (a per-period input). A reading of a KPI
keeps its numerator, denominator and sample size, so the statement can show what the amount rests on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from settlement.domain.money import decimal_text
from vr_shared.events.types import Label
from vr_shared.kpis import KPI_DIMENSIONS, KPI_MATURATION_DAYS


class KpiSource(BaseModel):
    """`{"kpi": "uptime_pct", "dimension": {"system": "ehr"}}`"""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kpi: str
    dimension: Annotated[tuple[tuple[str, str], ...], BeforeValidator(_pairs), PlainSerializer(dict)] = ()

    @field_validator("kpi")
    @classmethod
    def _known_kpi(cls, name: str) -> str:
        if name not in KPI_DIMENSIONS:
            raise ValueError(f"unknown KPI {name!r}; expected one of: {', '.join(KPI_DIMENSIONS)}")
        return name

    @model_validator(mode="after")
    def _known_dimension(self) -> KpiSource:
        allowed = KPI_DIMENSIONS[self.kpi]
        for key, _ in self.dimension:
            if key != allowed:
                expected = f"only {allowed!r}" if allowed else "none"
                raise ValueError(f"{self.kpi} has no dimension {key!r} ({expected})")
        return self

    def label(self) -> str:
        if not self.dimension:
            return self.kpi
        return f"{self.kpi}[{','.join(f'{k}={v}' for k, v in self.dimension)}]"


class InputSource(BaseModel):
    """`{"input": "benchmark"}`: a value entered per period."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    input: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


_LABEL = TypeAdapter(Label)


def _pairs(value: Any) -> Any:
    if isinstance(value, dict):
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise ValueError('a dimension maps names to string values, e.g. {"system": "ehr"}')
        for name, label in value.items():
            try:  # the rule events carry it by: a value they cannot carry would never match a KPI cell
                _LABEL.validate_python(label)
            except ValidationError:
                raise ValueError(
                    f"dimension {name!r}: {label!r} must be 1-64 lower-case letters, digits or '_' "
                    "as in the events (e.g. ehr, total_cost_of_care)"
                ) from None
        return tuple(sorted(value.items()))
    return value


Source = KpiSource | InputSource
Param = Decimal | KpiSource | InputSource


@dataclass(frozen=True, slots=True)
class MissingFeed:
    """A facility's feed not declared complete through the end of a reading's range."""

    facility: str
    feed: str
    complete_through: str | None  # RFC 3339, or None when never declared

    def as_json(self) -> dict[str, str | None]:
        return {"facility": self.facility, "feed": self.feed, "complete_through": self.complete_through}


@dataclass(frozen=True, slots=True)
class KpiReading:
    """One KPI value over one date range and the contract's facilities, as the KPI engine answered."""

    value: Decimal | None  # None: nothing measured (no denominator, or a total of no event)
    numerator: Decimal
    denominator: Decimal | None
    sample_size: int
    status: str  # provisional / mature
    missing: tuple[MissingFeed, ...] = ()  # the facility × feed pairs not complete through the end

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def mature(self) -> bool:
        return self.status == "mature"

    def as_json(self) -> dict[str, Any]:
        return {
            "value": None if self.value is None else decimal_text(self.value),
            "numerator": decimal_text(self.numerator),
            "denominator": None if self.denominator is None else decimal_text(self.denominator),
            "sample_size": self.sample_size,
            "status": self.status,
            "complete": self.complete,
            "missing": [m.as_json() for m in self.missing],
        }

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> KpiReading:
        """As the KPI engine answers it, or as a final statement's basis recorded it (bases written
        before completeness existed carry no `missing`)."""
        return cls(
            value=None if item["value"] is None else Decimal(item["value"]),
            numerator=Decimal(item["numerator"]),
            denominator=None if item["denominator"] is None else Decimal(item["denominator"]),
            sample_size=int(item["sample_size"]),
            status=item["status"],
            missing=tuple(
                MissingFeed(m["facility"], m["feed"], m["complete_through"]) for m in item.get("missing", ())
            ),
        )


class MissingValue(Exception):
    """A value source has no value for the period: the line pays 0 and says why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class KpiRequest:
    source: KpiSource
    start: date
    end: date


@dataclass
class Values:
    """Everything the terms of one statement may read: period inputs and prefetched KPI readings.

    Terms are pure; the service fetches what `needed_kpis` lists before computing. Every value read is
    recorded (by the name the term gives it) for the line's `inputs`.
    """

    inputs: dict[str, Decimal]
    kpis: dict[KpiRequest, KpiReading]
    used: dict[str, Any] = field(default_factory=dict)
    incomplete: list[tuple[KpiSource, KpiReading]] = field(default_factory=list)  # of the current line
    maturing: list[tuple[KpiSource, date]] = field(default_factory=list)  # of the current line

    def number(self, name: str, param: Param, start: date, end: date) -> Decimal:
        if isinstance(param, Decimal):
            self.used[name] = decimal_text(param)
            return param
        if isinstance(param, InputSource):
            if param.input not in self.inputs:
                raise MissingValue(
                    "missing_input", f"period input {param.input!r} ({name}) has not been entered"
                )
            value = self.inputs[param.input]
            self.used[name] = {"input": param.input, "value": decimal_text(value)}
            return value
        reading = self.reading(name, param, start, end)
        if reading.value is None:
            raise MissingValue("no_kpi_data", f"{param.label()} has no data for {start} to {end} ({name})")
        return reading.value

    def reading(self, name: str, source: KpiSource, start: date, end: date) -> KpiReading:
        reading = self.kpis.get(KpiRequest(source, start, end))
        if reading is None:
            raise MissingValue("kpi_unavailable", f"{source.label()} could not be read ({name})")
        self.used[name] = {"kpi": source.kpi, "dimension": dict(source.dimension), **reading.as_json()}
        if not reading.complete:
            self.incomplete.append((source, reading))
        if not reading.mature:
            matures_on = maturity_date(source.kpi, end)
            self.used[name]["matures_on"] = matures_on.isoformat()
            self.maturing.append((source, matures_on))
        return reading


def maturity_date(kpi: str, end: date) -> date:
    """The first local day on which a reading of `kpi` ending at `end` (exclusive) is mature: the
    engine calls it provisional until its KPI's maturation has passed after the range's end."""
    return end + timedelta(days=KPI_MATURATION_DAYS.get(kpi, 0))
