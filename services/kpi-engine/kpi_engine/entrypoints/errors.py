"""The KPI engine's error map: its database away (PostgreSQL restarting, failing over, out of
connections; vr_shared.db.database_away) → 503 with `Retry-After`, never a 500. A statement the
database refuses stays an unexpected error (500): retrying it would not help."""

from __future__ import annotations

from collections.abc import Mapping

from vr_shared.web import ErrorMapping, database_away_errors

# Seconds a client waits before asking again: about what a restarted PostgreSQL takes to take
# connections (the gateway tells the same wait for a service it cannot reach).
RETRY_AFTER_S = 2


def error_map() -> Mapping[type[Exception], ErrorMapping]:
    return database_away_errors(RETRY_AFTER_S)
