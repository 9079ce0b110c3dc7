"""The thirteen KPIs of docs/kpis.md: unit, how a value is formed from its numerator and denominator,
maturation, dimension, and the definition text a contract analyst reads."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum


class Aggregation(Enum):
    RATIO = "ratio"
    """value = scale × Σ numerator / Σ denominator; rolls up by summing both, never by averaging."""
    TOTAL = "total"
    """value = Σ numerator (an amount); there is no denominator."""
    LATEST_RATIO = "latest_ratio"
    """value = Σ numerator / Σ denominator of each facility's latest snapshot within the period."""


@dataclass(frozen=True, slots=True)
class KpiDefinition:
    name: str
    unit: str
    aggregation: Aggregation
    definition: str
    maturation_days: int = 0
    scale: Decimal = Decimal(1)
    dimension: str | None = None  # the dimension's name, e.g. "system" for uptime
    feeds: tuple[str, ...] = ()  # the feeds its events come from (docs/completeness.md)


_DEFINITIONS = (
    KpiDefinition(
        "readmission_rate_30d",
        "ratio",
        Aggregation.RATIO,
        "Index discharges with at least one unplanned inpatient readmission of the same patient (any "
        "facility of the tenant) admitted within 30 days after discharge / index discharges. Index "
        "discharge: a stay's standing discharge (the one received last) of class inpatient whose "
        "disposition is not expired, transfer_acute or ama. Attributed to the index discharge's date.",
        maturation_days=30,
        feeds=("adt",),
    ),
    KpiDefinition(
        "alos_days",
        "days",
        Aggregation.RATIO,
        "Σ length of stay / inpatient discharges, one per stay (its standing discharge: the one received "
        "last); length of stay = discharge date − admission date in days (same day = 0). By discharge date.",
        feeds=("adt",),
    ),
    KpiDefinition(
        "ade_per_1000_patient_days",
        "rate",
        Aggregation.RATIO,
        "1000 × adverse drug events with harm category E–I / patient days, where patient days = Σ max(length "
        "of stay, 1) of inpatient discharges, one per stay. ADEs by their date, patient days by discharge "
        "date.",
        scale=Decimal(1000),
        feeds=("adt", "safety"),
    ),
    KpiDefinition(
        "cpoe_rate",
        "ratio",
        Aggregation.RATIO,
        "Medication orders entered by CPOE / orders entered by CPOE, verbal, phone or paper (protocol orders "
        "excluded).",
        feeds=("medication",),
    ),
    KpiDefinition(
        "bcma_compliance",
        "ratio",
        Aggregation.RATIO,
        "Medication administrations with both patient and medication scanned / all administrations.",
        feeds=("medication",),
    ),
    KpiDefinition(
        "sepsis_bundle_compliance",
        "ratio",
        Aggregation.RATIO,
        "Bundle-compliant non-excluded sepsis cases / non-excluded cases.",
        feeds=("quality",),
    ),
    KpiDefinition(
        "uptime_pct",
        "percent",
        Aggregation.RATIO,
        "100 × (scheduled minutes − unplanned outage minutes) / scheduled minutes, per system; overlapping "
        "outages merged, clipped to the bucket; an open bucket's scheduled minutes stop at now. Without a "
        "system: every system the facility has named by an unplanned outage (none named: its systems as "
        "one). Roll-up: Σ available / Σ scheduled minutes.",
        scale=Decimal(100),
        dimension="system",
        feeds=("systems",),
    ),
    KpiDefinition(
        "claim_denial_rate",
        "ratio",
        Aggregation.RATIO,
        "Initial adjudications with outcome denied / initial adjudications.",
        feeds=("claims",),
    ),
    KpiDefinition(
        "clean_claim_rate",
        "ratio",
        Aggregation.RATIO,
        "Clean claim submissions / claim submissions whose cleanliness is known. A submission without "
        "it (clean null: cleanliness unknown) is in the sample size, not the denominator: sample size − "
        "denominator counts them.",
        feeds=("claims",),
    ),
    KpiDefinition(
        "days_in_ar",
        "days",
        Aggregation.LATEST_RATIO,
        "Net A/R / average daily net revenue of the latest ar.snapshot in the bucket; roll-up: Σ net A/R / "
        "Σ average daily net revenue of each facility's latest snapshot.",
        feeds=("ar",),
    ),
    KpiDefinition(
        "cost_to_collect",
        "ratio",
        Aggregation.RATIO,
        "Σ cost.incurred amount of category revenue_cycle / Σ payment.received amount.",
        feeds=("cost", "payments"),
    ),
    KpiDefinition(
        "pos_collection_rate",
        "ratio",
        Aggregation.RATIO,
        "Σ patient payments collected at the point of service / Σ patient payments.",
        feeds=("payments",),
    ),
    KpiDefinition(
        "cost_total",
        "money",
        Aggregation.TOTAL,
        "Σ cost.incurred amount, by category.",
        dimension="category",
        feeds=("cost",),
    ),
)

CATALOGUE: dict[str, KpiDefinition] = {d.name: d for d in _DEFINITIONS}


def feeds_of(kpis: Iterable[str]) -> list[str]:
    """The feeds the given KPIs depend on."""
    return sorted({feed for kpi in kpis for feed in CATALOGUE[kpi].feeds})
