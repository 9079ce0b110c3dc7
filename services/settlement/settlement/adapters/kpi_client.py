"""Reads KPI values from the KPI engine's query API (SPEC §5), as the contract's health system.

Settlement never reads the engine's tables: it asks `GET /v1/kpis/{kpi}/values` for the contract's
facilities over a date range, with an identity it signs for the health system (short-lived, role
`ops`, the contract's facilities and time zone). One range is one bucket (granularity `year`: a
period never crosses a calendar year), so the answer is the KPI over exactly that range.
"""

from __future__ import annotations

import asyncio
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
    def __init__(self, client: httpx.AsyncClient, signer: IdentitySigner, *, concurrency: int = 8) -> None:
        self._client = client
        self._signer = signer
        self._slots = asyncio.Semaphore(concurrency)

    async def read(self, contract: Contract, requests: list[KpiRequest]) -> dict[KpiRequest, KpiReading]:
        """Every request's reading; a KPI the engine refuses (unknown facility) is left out, so the
        line that needs it says why."""
        identity = Identity(
            tenant=contract.health_system,
            role="ops",
            key_id="settlement",
            facilities=frozenset(contract.facilities),
            tenant_kind="health_system",
            timezone=contract.timezone,
        )
        headers = {HEADER: self._signer.sign(identity)}
        readings = await asyncio.gather(*(self._read_one(contract, r, headers) for r in requests))
        return {r: reading for r, reading in zip(requests, readings, strict=True) if reading is not None}

    async def _read_one(
        self, contract: Contract, request: KpiRequest, headers: dict[str, str]
    ) -> KpiReading | None:
        params: list[tuple[str, str | int | float | bool | None]] = [
            ("facility", f) for f in contract.facilities
        ]
        params += [
            ("from", request.start.isoformat()),
            ("to", request.end.isoformat()),
            ("granularity", "year"),
        ]
        params += [("dimension", value) for _, value in request.source.dimension]
        async with self._slots:
            started = time.perf_counter()
            try:
                response = await self._client.get(
                    f"/v1/kpis/{request.source.kpi}/values", params=params, headers=headers
                )
            except httpx.HTTPError as exc:
                raise KpiEngineUnavailable(f"KPI engine unreachable: {type(exc).__name__}") from exc
            finally:
                metrics.KPI_READ_SECONDS.observe(time.perf_counter() - started)
        if response.status_code >= 500:
            raise KpiEngineUnavailable(f"KPI engine answered {response.status_code}")
        if response.status_code != 200:
            return None
        return _reading(response.json())


def _reading(answer: dict[str, Any]) -> KpiReading | None:
    values = answer.get("values") or []
    if len(values) != 1:
        return None
    point = values[0]
    return KpiReading(
        value=None if point["value"] is None else Decimal(point["value"]),
        numerator=Decimal(point["numerator"]),
        denominator=None if point["denominator"] is None else Decimal(point["denominator"]),
        sample_size=int(point["sample_size"]),
        status=point["status"],
    )
