"""Who may read what of the KPI engine (docs/security.md), in one place.

Roles come from the signed identity; facilities and KPI grants too. A caller limited to some KPIs (a
vendor through its contracts, settlement for one contract) reads exactly what it was granted — one value
of a KPI's dimension is not its total, nor the total its breakdown — and meets anything else as an
unknown KPI, exactly like one that does not exist.
"""

from __future__ import annotations

from vr_shared.identity import Identity
from vr_shared.kpis import granted_kpis, may_read
from vr_shared.roles import READERS, Role

KPI_READERS = READERS
# Settlement reads the values of the contract it computes (and nothing else: its token says which).
READINGS_READERS = READERS | {Role.SERVICE}
# Pipelines read their own feeds' completeness too: it is what they declare.
FEED_READERS = READERS | {Role.PIPELINE}
EVENT_INSPECTORS = frozenset({Role.PLATFORM_ADMIN, Role.TENANT_ADMIN, Role.PIPELINE, Role.OPS})


def may_read_kpi(caller: Identity, kpi: str, dimension_value: str | None) -> bool:
    return may_read(caller.kpis, kpi, dimension_value)


def may_know_kpi(caller: Identity, kpi: str) -> bool:
    """Whether the KPI exists for the caller at all (any grant of it)."""
    return caller.kpis is None or kpi in granted_kpis(caller.kpis)


def readable_kpis(caller: Identity, catalogue: frozenset[str]) -> list[str]:
    """The KPIs of the catalogue whose feeds the caller may see."""
    return sorted(catalogue if caller.kpis is None else granted_kpis(caller.kpis) & catalogue)
