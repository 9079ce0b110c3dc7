"""The KPI vocabulary of the public API (docs/kpis.md): each KPI's name and the name of its dimension.

A contract names KPIs and dimensions; settlement validates them at write time against this list. The
definitions and the maths live in the KPI engine, whose catalogue is tested to match these names.
"""

from __future__ import annotations

KPI_DIMENSIONS: dict[str, str | None] = {
    "readmission_rate_30d": None,
    "alos_days": None,
    "ade_per_1000_patient_days": None,
    "cpoe_rate": None,
    "bcma_compliance": None,
    "sepsis_bundle_compliance": None,
    "uptime_pct": "system",
    "claim_denial_rate": None,
    "clean_claim_rate": None,
    "days_in_ar": None,
    "cost_to_collect": None,
    "pos_collection_rate": None,
    "cost_total": "category",
}

KPI_MATURATION_DAYS: dict[str, int] = {"readmission_rate_30d": 30}
"""KPIs whose value keeps changing after its bucket ends (a readmission can still happen for 30 days):
days until it is mature. Every other KPI is mature when its bucket ends. Settlement never pays from a
value before it is mature (docs/settlement.md)."""

KPIS_WITHOUT_DENOMINATOR: frozenset[str] = frozenset({"cost_total"})
"""Totals: a `min_denominator` on them could never be met (a contract refuses it at write)."""


# --- grants: which KPI values a caller limited to some KPIs may read (docs/security.md) -------------


def grant(kpi: str, dimension_value: str | None = None) -> str:
    """`cost_total` (the KPI over every dimension value, or a KPI without dimension) or
    `cost_total[category=total_cost_of_care]` (one value of its dimension)."""
    dimension = KPI_DIMENSIONS.get(kpi)
    if dimension_value is None or dimension is None:
        return kpi
    return f"{kpi}[{dimension}={dimension_value}]"


def may_read(grants: frozenset[str] | None, kpi: str, dimension_value: str | None = None) -> bool:
    """Exactly what was granted: a KPI's total does not open its breakdown by dimension, nor one
    dimension value another. None: no limit."""
    return grants is None or grant(kpi, dimension_value) in grants


def granted_kpis(grants: frozenset[str]) -> frozenset[str]:
    """The KPI names of some grants (what their feeds are)."""
    return frozenset(g.split("[", 1)[0] for g in grants)
