"""Small builders for settlement unit tests: a contract around one term, and a statement line for it."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from settlement.domain.contract import Contract, parse_contract
from settlement.domain.periods import Period, parse_period
from settlement.domain.sources import KpiReading, KpiRequest, KpiSource, Values
from settlement.domain.statement import compute_line
from settlement.domain.terms.lines import Line


def contract(*terms: dict[str, Any], **overrides: Any) -> Contract:
    document: dict[str, Any] = {
        "id": "test-contract",
        "name": "Test",
        "health_system": "mission-health",
        "vendor": "acme-emr",
        "facilities": ["asheville-main"],
        "currency": "USD",
        "timezone": "America/New_York",
        "start": "2026-01-01",
        "end": "2026-12-31",
        "period": "quarter",
        "runout_days": 90,
        "fees": {"monthly_fee": "10000.00"},
        "terms": list(terms),
    }
    document.update(overrides)
    return parse_contract(document)


def q1(c: Contract) -> Period:
    return parse_period(c.period, "2026-Q1", c.start, c.end)


def reading(value: str | None, numerator: str = "0", denominator: str | None = "1") -> KpiReading:
    return KpiReading(
        None if value is None else Decimal(value),
        Decimal(numerator),
        None if denominator is None else Decimal(denominator),
        int(Decimal(denominator or "0")),
        "mature",
    )


def line(
    term: dict[str, Any],
    inputs: dict[str, str] | None = None,
    kpis: dict[tuple[str, date, date], KpiReading] | None = None,
    **contract_overrides: Any,
) -> Line:
    """The line of a one-term contract for 2026-Q1; `kpis` keyed by (kpi, start, end)."""
    c = contract(term, **contract_overrides)
    readings = {}
    for (kpi, start, end), value in (kpis or {}).items():
        name, _, dimension = kpi.partition(":")
        pairs = tuple(sorted([tuple(dimension.split("="))])) if dimension else ()
        readings[KpiRequest(KpiSource(kpi=name, dimension=dict(pairs)), start, end)] = value
    values = Values({k: Decimal(v) for k, v in (inputs or {}).items()}, readings)
    return compute_line(c.terms[0], c, q1(c), values)


def step(line: Line, name: str) -> Decimal | str:
    return {step.name: step.value for step in line.steps}[name]
