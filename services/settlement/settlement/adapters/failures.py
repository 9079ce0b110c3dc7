"""Which errors of settlement's adapters can pass — retried by background work — and which never will.

The database away (a restart, a failover, a connection refused or reset, a connection the pool found
dead) or two transactions crossing (a deadlock or serialization failure, rolled back whole) pass
(`vr_shared.db.database_away`); so does the KPI engine away or answering a server error
(`KpiEngineUnavailable`). A statement PostgreSQL refuses (an integrity, data or programming
error), a refusal of the KPI engine (`KpiEngineRefused`) or a bug gives the same answer each time:
retrying it in a loop would hold back every other reconciliation behind it.
"""

from __future__ import annotations

from settlement.adapters.kpi_client import KpiEngineUnavailable
from vr_shared.db import database_away


def can_pass(exc: BaseException) -> bool:
    """Whether the same work, tried again later, can succeed."""
    return isinstance(exc, KpiEngineUnavailable) or database_away(exc)


def engine_unreachable(exc: BaseException) -> bool:
    """The KPI engine did not answer at all: every other request would wait its timeout too."""
    return isinstance(exc, KpiEngineUnavailable) and exc.unreachable
