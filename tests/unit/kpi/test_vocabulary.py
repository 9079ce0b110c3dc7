"""The engine's catalogue and the public KPI vocabulary contracts are validated against agree."""

from __future__ import annotations

from kpi_engine.domain.catalogue import CATALOGUE
from vr_shared.kpis import KPI_DIMENSIONS


def test_every_kpi_and_dimension_name_matches_the_engine_catalogue() -> None:
    assert {name: k.dimension for name, k in CATALOGUE.items()} == KPI_DIMENSIONS
