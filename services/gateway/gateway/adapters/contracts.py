"""The contracts a vendor's key is party to, as settlement answers them: what the vendor's KPI view
is built from. Kept for a few seconds per key — no staler than a cached key may be — so a vendor's
dashboard polling KPIs does not ask settlement for every request."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from vr_shared.identity import HEADER

_MAX_KEYS = 10_000  # bounded memory: past it, the oldest answers go first
PAGE = 200  # contracts per request to settlement


class SettlementUnavailable(Exception):
    """Settlement answered a server error: the contracts cannot be read now, which is not "none" — a
    vendor's view is never built as empty for it; the caller retries (503)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"settlement answered {status}: the contracts cannot be read now")
        self.status = status


class SettlementContracts:
    def __init__(
        self,
        settlement: httpx.AsyncClient,
        *,
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settlement, self._ttl_s, self._clock = settlement, ttl_seconds, clock
        self._seen: dict[str, tuple[float, list[dict[str, Any]]]] = {}

    async def of(self, key_id: str, identity_token: str) -> list[dict[str, Any]]:
        """Contract summaries (`health_system`, `facilities`, `kpis`, …) the caller may read; none if
        settlement refuses (4xx: the caller is party to none it may read). A server error raises
        `SettlementUnavailable`, no connection or answer httpx's error. Only a whole answer is kept."""
        now = self._clock()
        seen = self._seen.get(key_id)
        if seen is not None and seen[0] > now:
            return seen[1]
        contracts: list[dict[str, Any]] = []
        params: dict[str, str | int] = {"limit": PAGE}
        while True:  # every page: a vendor's view is the union of all its contracts
            answer = await self._settlement.get(
                "/v1/contracts", params=params, headers={HEADER: identity_token}
            )
            if answer.status_code >= 500:
                raise SettlementUnavailable(answer.status_code)
            if answer.status_code != 200:
                return []
            found = answer.json()
            contracts.extend(found["items"])
            if not found.get("next"):
                break
            params["after"] = found["next"]
        if self._ttl_s > 0:
            if len(self._seen) >= _MAX_KEYS:
                del self._seen[next(iter(self._seen))]
            self._seen[key_id] = (now + self._ttl_s, contracts)
        return contracts
