"""Steady reads while the traffic runs: a dashboard reading a KPI's values and a billing system reading
a statement through the gateway every few seconds. Their answers are tallied with everyone's (the
answers invariant), so the read paths meet every fault, PostgreSQL away included."""

from __future__ import annotations

import asyncio
import contextlib

from devstack.soak.api import Api

YEAR = {"from": "2026-01-01", "to": "2027-01-01", "granularity": "year"}


class SteadyReads:
    def __init__(
        self, kpis: Api, facility: str, statements: Api, statement_path: str, every_s: float = 3.0
    ) -> None:
        self._kpis, self._facility = kpis, facility
        self._statements, self._statement_path, self._every_s = statements, statement_path, every_s
        self.answered = 0  # reads answered (whatever the status: the answers invariant judges it)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            params = {**YEAR, "facility": self._facility}
            await self._kpis.call("GET", "/v1/kpis/clean_claim_rate/values", params=params)
            await self._statements.call("GET", self._statement_path)
            self.answered += 2
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._every_s)
