"""A vendor's contracts are asked of settlement once per key and TTL, never kept when settlement fails;
a server error of settlement is an error (the gateway answers 503), never "no contracts"."""

from __future__ import annotations

import httpx
import pytest

from gateway.adapters.contracts import SettlementContracts, SettlementUnavailable
from vr_shared.identity import HEADER

CONTRACT = {"id": "c1", "health_system": "h", "facilities": ["h-main"], "kpis": ["uptime_pct"]}


class Settlement:
    """Settlement's `GET /v1/contracts` as seen over HTTP: answers `status`, records who asked."""

    def __init__(self) -> None:
        self.status = 200
        self.asked: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.asked.append(request.headers[HEADER])
        return httpx.Response(self.status, json={"items": [CONTRACT]} if self.status == 200 else {})


async def test_answers_are_kept_per_key_until_the_ttl_ends_and_failures_are_not_kept() -> None:
    settlement, now = Settlement(), [100.0]
    async with httpx.AsyncClient(transport=httpx.MockTransport(settlement), base_url="http://s") as client:
        contracts = SettlementContracts(client, ttl_seconds=5, clock=lambda: now[0])
        assert await contracts.of("key-a", "token-a") == [CONTRACT]
        now[0] = 104.9
        assert await contracts.of("key-a", "token-a-renewed") == [CONTRACT]
        assert settlement.asked == ["token-a"]  # kept for key-a
        assert await contracts.of("key-b", "token-b") == [CONTRACT]
        now[0] = 105.0
        assert await contracts.of("key-a", "token-a-2") == [CONTRACT]
        assert settlement.asked == ["token-a", "token-b", "token-a-2"]

        settlement.status = 403
        now[0] = 200.0
        assert await contracts.of("key-a", "t") == [] and await contracts.of("key-a", "t") == []
        assert len(settlement.asked) == 5  # each refusal asked again, none kept
        settlement.status = 200
        assert await contracts.of("key-a", "t") == [CONTRACT]


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_a_server_error_of_settlement_raises_and_is_not_kept(status: int) -> None:
    """During a restart of settlement (or of its database) a vendor's view is not built as empty."""
    settlement, now = Settlement(), [100.0]
    async with httpx.AsyncClient(transport=httpx.MockTransport(settlement), base_url="http://s") as client:
        contracts = SettlementContracts(client, ttl_seconds=5, clock=lambda: now[0])
        settlement.status = status
        for _ in range(2):
            with pytest.raises(SettlementUnavailable) as raised:
                await contracts.of("key-a", "t")
            assert raised.value.status == status
        settlement.status = 200
        assert await contracts.of("key-a", "t") == [CONTRACT]
    assert len(settlement.asked) == 3  # each failure asked again, none kept


async def test_a_server_error_on_a_later_page_raises_and_keeps_no_part() -> None:
    pages = [
        httpx.Response(200, json={"items": [CONTRACT], "next": "c1"}),
        httpx.Response(503, json={}),
        httpx.Response(200, json={"items": [CONTRACT], "next": "c1"}),
        httpx.Response(200, json={"items": [{**CONTRACT, "id": "c2"}], "next": None}),
    ]
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(lambda _: pages.pop(0)), base_url="http://s"
    ) as client:
        contracts = SettlementContracts(client, ttl_seconds=5)
        with pytest.raises(SettlementUnavailable):
            await contracts.of("key-a", "t")
        assert [c["id"] for c in await contracts.of("key-a", "t")] == ["c1", "c2"]


async def test_settlement_unreachable_raises_the_transport_error() -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refused), base_url="http://s") as client:
        with pytest.raises(httpx.ConnectError):
            await SettlementContracts(client, ttl_seconds=5).of("key-a", "t")


async def test_no_ttl_asks_every_time() -> None:
    settlement = Settlement()
    async with httpx.AsyncClient(transport=httpx.MockTransport(settlement), base_url="http://s") as client:
        contracts = SettlementContracts(client, ttl_seconds=0)
        for _ in range(3):
            assert await contracts.of("key-a", "t") == [CONTRACT]
    assert len(settlement.asked) == 3
