"""The KPI client tells an engine that is away (retried by background work) from one that refuses the
request (the same answer each time: never retried in a loop), docs/settlement.md "Adjustments"."""

from __future__ import annotations

import httpx
import pytest

from settlement.adapters.failures import can_pass, engine_unreachable
from settlement.adapters.kpi_client import HttpKpiReader, KpiEngineRefused, KpiEngineUnavailable
from settlement.domain.statement import kpi_requests
from tests.support.identity import SETTLEMENT_PRIVATE_KEY
from tests.unit.settlement.builders import contract, q1
from tests.unit.settlement.test_settlement_service import INCENTIVE
from vr_shared.identity import IdentitySigner, issuer


async def _read(handler: httpx.MockTransport) -> None:
    signer = IdentitySigner(SETTLEMENT_PRIVATE_KEY, issuer=issuer("settlement"), ttl_seconds=60)
    c = contract(INCENTIVE)
    async with httpx.AsyncClient(transport=handler, base_url="http://kpi-engine") as client:
        await HttpKpiReader(client, signer).read(c, kpi_requests(c, q1(c)))


def _answering(status: int, body: bytes = b'{"detail": "no"}') -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(status, content=body))


@pytest.mark.parametrize("status", [500, 502, 503, 429])
async def test_a_server_error_is_the_engine_away(status: int) -> None:
    with pytest.raises(KpiEngineUnavailable) as raised:
        await _read(_answering(status))
    assert can_pass(raised.value) and not engine_unreachable(raised.value)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_a_refusal_is_not_retried(status: int) -> None:
    with pytest.raises(KpiEngineRefused) as raised:
        await _read(_answering(status))
    assert not can_pass(raised.value) and f"answered {status}" in str(raised.value)


async def test_an_answer_that_is_not_readings_is_a_refusal() -> None:
    with pytest.raises(KpiEngineRefused):
        await _read(_answering(200, b'{"something": "else"}'))


async def test_no_answer_at_all_is_the_engine_unreachable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(KpiEngineUnavailable) as raised:
        await _read(httpx.MockTransport(refuse))
    assert engine_unreachable(raised.value) and can_pass(raised.value)
