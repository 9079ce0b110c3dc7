"""The gateway's error map: its own errors, and its database away → 503 with `Retry-After` (the same
wait as for a service that cannot be reached, `proxy.UNAVAILABLE_RETRY_S`)."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.adapters.directory import TenantExists
from gateway.entrypoints.proxy import UNAVAILABLE_RETRY_S
from vr_shared.web import ErrorMapping, database_away_errors


def error_map() -> Mapping[type[Exception], ErrorMapping]:
    return {
        TenantExists: ErrorMapping(409, "Tenant exists"),
        # PostgreSQL restarting, failing over, out of connections: the caller retries; a statement it
        # refuses stays an unexpected error.
        **database_away_errors(UNAVAILABLE_RETRY_S),
    }
