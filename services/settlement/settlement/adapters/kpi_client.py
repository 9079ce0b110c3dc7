"""Reads KPI values from the KPI engine's query API (docs/kpis.md), as settlement itself.

Settlement never reads the engine's tables: it asks `POST /v1/kpis/readings` for every KPI value a
statement needs (each over its own date range, for the contract's facilities) in one request. It calls
as itself: a short-lived token signed with its own key (issuer `vr-settlement`, role `service`) for the
contract's health system, scoped to the contract's facilities and the KPIs its terms read — never a
health system's identity it could not have (docs/security.md).
"""

from __future__ import annotations

import time

import httpx
from pydantic import ValidationError

from settlement import metrics
from settlement.domain.contract import Contract
from settlement.domain.ports import ReadingsUnavailable
from settlement.domain.sources import KpiReading, KpiRequest
from vr_shared.identity import HEADER, Identity, IdentitySigner, audience
from vr_shared.readings import ReadingRequest, ReadingsAnswer, ReadingsRequest
from vr_shared.roles import Role


class KpiEngineError(ReadingsUnavailable):
    """The KPI engine gave no readings: a statement is not computed on partial data, and an error is never
    read as "no data" (docs/settlement.md)."""


class KpiEngineUnavailable(KpiEngineError):
    """The engine did not answer (`unreachable`: no connection, no answer in time) or answered a server
    error (5xx) or 429: it can pass, so background work retries it."""

    def __init__(self, message: str, *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


class KpiEngineRefused(KpiEngineError):
    """The engine refused the request (4xx: a token, a scope, a range it does not take) or answered what
    is not a readings answer: asking the same again gets the same, so background work does not retry it
    in a loop (docs/settlement.md, "Adjustments")."""


class HttpKpiReader:
    def __init__(self, client: httpx.AsyncClient, signer: IdentitySigner) -> None:
        self._client = client
        self._signer = signer

    async def read(self, contract: Contract, requests: list[KpiRequest]) -> dict[KpiRequest, KpiReading]:
        """Every request's reading; KpiEngineUnavailable for no answer at all or a server error,
        KpiEngineRefused for a refusal (a token, a scope) or an answer that is not readings."""
        if not requests:
            return {}
        identity = Identity(
            tenant=contract.health_system,
            role=Role.SERVICE,
            key_id="settlement",
            facilities=frozenset(contract.facilities),
            tenant_kind="health_system",
            timezone=contract.timezone,
            kpis=frozenset(r.source.label() for r in requests),
        )
        asked = ReadingsRequest(
            facility=list(contract.facilities),
            readings=[
                ReadingRequest(
                    kpi=r.source.kpi,
                    start=r.start,
                    end=r.end,
                    dimension=r.source.dimension[0][1] if r.source.dimension else None,
                )
                for r in requests
            ],
        )
        body = asked.model_dump(mode="json", by_alias=True, exclude_none=True)
        started = time.perf_counter()
        try:
            response = await self._client.post(
                "/v1/kpis/readings",
                json=body,
                headers={HEADER: self._signer.sign(identity, audience("kpi-engine"))},
            )
        except httpx.HTTPError as exc:
            unreachable = f"KPI engine unreachable: {type(exc).__name__}"
            raise KpiEngineUnavailable(unreachable, unreachable=True) from exc
        finally:
            metrics.KPI_READ_SECONDS.observe(time.perf_counter() - started)
        if response.status_code != 200:
            answered = f"KPI engine answered {response.status_code}: {_detail(response)}"
            passes = response.is_server_error or response.status_code == 429  # busy: asked to come back
            raise KpiEngineUnavailable(answered) if passes else KpiEngineRefused(answered)
        try:
            points = ReadingsAnswer.model_validate_json(response.content).readings
        except ValidationError as exc:
            raise KpiEngineRefused(f"KPI engine answered what is not a readings answer: {exc}") from exc
        return {r: KpiReading.from_json(p.model_dump()) for r, p in zip(requests, points, strict=True)}


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", ""))[:200]
    except (ValueError, AttributeError):
        return ""
