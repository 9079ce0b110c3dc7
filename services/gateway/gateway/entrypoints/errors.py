"""The gateway's error map: its own errors; its database away, or settlement answering a server error
when a vendor's contracts are read → 503 with `Retry-After` (the same wait as for a service that cannot
be reached, `proxy.UNAVAILABLE_RETRY_S`)."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.adapters.contracts import SettlementUnavailable
from gateway.adapters.directory import TenantExists
from gateway.entrypoints.proxy import UNAVAILABLE_RETRY_S
from vr_shared.web import ErrorMapping, database_away_errors


def error_map() -> Mapping[type[Exception], ErrorMapping]:
    return {
        TenantExists: ErrorMapping(409, "Tenant exists"),
        SettlementUnavailable: ErrorMapping(
            503, "Service unavailable", headers={"Retry-After": str(UNAVAILABLE_RETRY_S)}
        ),
        # PostgreSQL restarting, failing over, out of connections: the caller retries; a statement it
        # refuses stays an unexpected error.
        **database_away_errors(UNAVAILABLE_RETRY_S),
    }
