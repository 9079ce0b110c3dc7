"""The KPI vocabulary of the public API (SPEC §5): each KPI's name and the name of its dimension.

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

KPIS_WITHOUT_DENOMINATOR: frozenset[str] = frozenset({"cost_total"})
"""Totals: a `min_denominator` on them could never be met (a contract refuses it at write)."""
