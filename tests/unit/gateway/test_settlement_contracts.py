"""A vendor's contracts are asked of settlement once per key and TTL, never kept when settlement fails."""

from __future__ import annotations

import httpx

from gateway.adapters.contracts import SettlementContracts
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

        settlement.status = 503
        now[0] = 200.0
        assert await contracts.of("key-a", "t") == [] and await contracts.of("key-a", "t") == []
        assert len(settlement.asked) == 5  # each failed answer asked again, none kept
        settlement.status = 200
        assert await contracts.of("key-a", "t") == [CONTRACT]


async def test_no_ttl_asks_every_time() -> None:
    settlement = Settlement()
    async with httpx.AsyncClient(transport=httpx.MockTransport(settlement), base_url="http://s") as client:
        contracts = SettlementContracts(client, ttl_seconds=0)
        for _ in range(3):
            assert await contracts.of("key-a", "t") == [CONTRACT]
    assert len(settlement.asked) == 3
