"""Settlement's error map: domain exceptions → problem+json status, title and members; the KPI engine or
the database away → 503 with `Retry-After`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from settlement.adapters.kpi_client import KpiEngineError
from settlement.adapters.repository import ContractExists
from settlement.domain.contract import ContractInvalid
from settlement.domain.periods import PeriodError
from settlement.handlers import PeriodNotEnded, StatementIncomplete, StatementMaturing
from vr_shared.web import ErrorMapping, database_away_errors


def error_map(retry_after_seconds: int) -> Mapping[type[Exception], ErrorMapping]:
    return {
        ContractInvalid: ErrorMapping(
            422,
            "Invalid contract",
            members=_field_errors,
        ),
        ContractExists: ErrorMapping(409, "Contract exists"),
        PeriodError: ErrorMapping(404, "Unknown period"),
        PeriodNotEnded: ErrorMapping(409, "Period not ended"),
        StatementIncomplete: ErrorMapping(
            409,
            "Statement incomplete",
            members=_missing,
        ),
        StatementMaturing: ErrorMapping(
            409,
            "Statement maturing",
            members=_maturing,
        ),
        # Away or refusing, the engine gave no readings: the caller retries later (a refusal is our
        # configuration's fault, not the caller's request's, and is fixed on our side).
        KpiEngineError: ErrorMapping(
            503, "KPI engine unavailable", headers={"Retry-After": str(retry_after_seconds)}
        ),
        # PostgreSQL restarting, failing over, out of connections: the caller retries, never a 500; a
        # statement it refuses stays an unexpected error (vr_shared.db.database_away).
        **database_away_errors(retry_after_seconds),
    }


def _field_errors(exc: Exception) -> Mapping[str, Any]:
    assert isinstance(exc, ContractInvalid)
    return {"errors": [e.as_json() for e in exc.errors]}


def _missing(exc: Exception) -> Mapping[str, Any]:
    assert isinstance(exc, StatementIncomplete)
    return exc.missing


def _maturing(exc: Exception) -> Mapping[str, Any]:
    assert isinstance(exc, StatementMaturing)
    return {"maturing": exc.maturing}
