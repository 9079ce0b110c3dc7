"""The KPI level each term aims at, for dashboards and alerts: a linear incentive's target, the most
demanding tier's threshold, an SLA's first `below` (the promised level). Constants only: a target that
is itself a value source is known per period, not per contract."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from settlement.domain.contract import Contract, KpiIncentive, SlaCredit
from settlement.domain.sources import KpiSource


@dataclass(frozen=True, slots=True)
class KpiTarget:
    term_id: str
    kpi: str
    dimension: str
    direction: str  # higher_is_better / lower_is_better
    level: Decimal


def kpi_targets(contract: Contract) -> list[KpiTarget]:
    targets = []
    for term in contract.terms:
        source = term.source if isinstance(term, KpiIncentive | SlaCredit) else None
        if not isinstance(source, KpiSource):
            continue
        dimension = ",".join(value for _, value in source.dimension)
        if isinstance(term, SlaCredit):
            targets.append(KpiTarget(term.id, source.kpi, dimension, "higher_is_better", term.tiers[0].below))
        elif isinstance(term, KpiIncentive):
            level = term.tiers[-1].threshold if term.curve == "tiers" and term.tiers else term.target
            if isinstance(level, Decimal):
                targets.append(KpiTarget(term.id, source.kpi, dimension, term.direction, level))
    return targets
