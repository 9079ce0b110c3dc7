"""Reads KPI values from the KPI engine's query API (SPEC §5), as the contract's health system.

Settlement never reads the engine's tables: it asks `POST /v1/kpis/readings` for every KPI value a
statement needs (each over its own date range, for the contract's facilities) in one request, with an
identity it signs for the health system (short-lived, role `ops`, the contract's facilities and time
zone).
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import httpx

from settlement import metrics
from settlement.domain.contract import Contract
from settlement.domain.sources import KpiReading, KpiRequest
from vr_shared.identity import HEADER, Identity, IdentitySigner


class KpiEngineUnavailable(Exception):
    """The KPI engine did not answer; a statement is not computed on partial data."""


class HttpKpiReader:
    def __init__(self, client: httpx.AsyncClient, signer: IdentitySigner) -> None:
        self._client = client
        self._signer = signer

    async def read(self, contract: Contract, requests: list[KpiRequest]) -> dict[KpiRequest, KpiReading]:
        """Every request's reading. If the engine refuses the scope (a facility it does not know for
        the tenant), nothing is read and the lines that need KPIs say why."""
        if not requests:
            return {}
        identity = Identity(
            tenant=contract.health_system,
            role="ops",
            key_id="settlement",
            facilities=frozenset(contract.facilities),
            tenant_kind="health_system",
            timezone=contract.timezone,
        )
        body = {
            "facility": list(contract.facilities),
            "readings": [
                {
                    "kpi": r.source.kpi,
                    "from": r.start.isoformat(),
                    "to": r.end.isoformat(),
                    **({"dimension": r.source.dimension[0][1]} if r.source.dimension else {}),
                }
                for r in requests
            ],
        }
        started = time.perf_counter()
        try:
            response = await self._client.post(
                "/v1/kpis/readings", json=body, headers={HEADER: self._signer.sign(identity)}
            )
        except httpx.HTTPError as exc:
            raise KpiEngineUnavailable(f"KPI engine unreachable: {type(exc).__name__}") from exc
        finally:
            metrics.KPI_READ_SECONDS.observe(time.perf_counter() - started)
        if response.status_code >= 500:
            raise KpiEngineUnavailable(f"KPI engine answered {response.status_code}")
        if response.status_code != 200:
            return {}
        points = response.json()["readings"]
        return {r: _reading(point) for r, point in zip(requests, points, strict=True)}


def _reading(point: dict[str, Any]) -> KpiReading:
    return KpiReading(
        value=None if point["value"] is None else Decimal(point["value"]),
        numerator=Decimal(point["numerator"]),
        denominator=None if point["denominator"] is None else Decimal(point["denominator"]),
        sample_size=int(point["sample_size"]),
        status=point["status"],
    )
