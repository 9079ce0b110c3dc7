"""Contracts settling while the soak runs: three contracts (two monthly, one quarterly) of a health
system and a vendor, shared savings on the cost of care. Before the soak every period of January–June
2026 is complete and ready; during it the vendor's billing key finalizes them one by one while the
health system's pipeline keeps sending late cost events for those months — each a change to a period
that is, or soon will be, final: adjustments.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from devstack.soak.api import Api, Clock, SetUpFailed, expect
from devstack.soak.checks import ZERO, Booked, StatementCheck
from devstack.soak.pipelines import Tally
from devstack.soak.timing import sleep_until

MONTHS = [f"2026-{m:02d}" for m in range(1, 7)]
QUARTERS = ["2026-Q1", "2026-Q2"]
MONTHLY_COST = Decimal("900000.00")
CATEGORY = "total_cost_of_care"
WATERMARK = "2026-07-01T00:00:00+00:00"  # the cost feed is declared complete through June


@dataclass(frozen=True)
class Parties:
    health: str
    vendor: str
    facilities: list[str]


@dataclass(frozen=True)
class Finalization:
    at: float
    contract: str
    period: str
    status: int


def contract(contract_id: str, p: Parties, facilities: list[str], period: str) -> dict[str, Any]:
    return {
        "id": contract_id,
        "name": f"Soak {contract_id}",
        "health_system": p.health,
        "vendor": p.vendor,
        "facilities": facilities,
        "currency": "USD",
        "timezone": "UTC",
        "start": "2026-01-01",
        "end": "2026-12-31",
        "period": period,
        "runout_days": 0,
        "terms": [
            {
                "id": "savings",
                "kind": "shared_savings",
                "expenditure": {"kpi": "cost_total", "dimension": {"category": CATEGORY}},
                "benchmark": {"input": "benchmark"},
                "savings_rate": "0.5",
                "quality_score": {"input": "quality"},
                "savings_caps": [{"rate": "0.10", "of": "benchmark"}],
            }
        ],
    }


def cost(event_id: str, facility: str, month: str, amount: Decimal) -> dict[str, Any]:
    return {
        "id": event_id,
        "source": "soak-erp",
        "type": "cost.incurred",
        "time": f"{month}-15T12:00:00+00:00",
        "facility": facility,
        "data": {"category": CATEGORY, "amount": format(amount, "f")},
    }


@dataclass
class Settling:
    admin: Api  # the health system's tenant_admin: contracts, inputs, what-ifs
    billing: Api  # the vendor's billing key: statements, finalize
    pipeline: Api  # the health system's cost feed
    parties: Parties
    seed: int
    clock: Clock
    suffix: str = ""
    tally: Tally = field(default_factory=lambda: Tally("settling"))
    finalizations: list[Finalization] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    adjustments: int = 0  # counted by the last statements() read
    booked_adjustments: list[Booked] = field(default_factory=list)  # as the last statements() read them

    def __post_init__(self) -> None:
        a, b = self.parties.facilities
        p = self.parties
        ids = {name: f"soak-{name}-{self.suffix}" if self.suffix else f"soak-{name}" for name in "abc"}
        self.contracts = {
            ids["a"]: (contract(ids["a"], p, [a], "month"), MONTHS, "1000000.00"),
            ids["b"]: (contract(ids["b"], p, [b], "month"), MONTHS, "1000000.00"),
            ids["c"]: (contract(ids["c"], p, [a, b], "quarter"), QUARTERS, "6000000.00"),
        }
        self._rng = random.Random(self.seed)

    def inputs(self, contract_id: str) -> dict[str, dict[str, str]]:
        _, periods, benchmark = self.contracts[contract_id]
        return {period: {"benchmark": benchmark, "quality": "1"} for period in periods}

    async def prepare(self, ready_within_s: float = 180.0) -> None:
        """Contracts, inputs, every month's cost and the feed declared complete; then wait until every
        period is ready to finalize."""
        for contract_id, (document, _, _) in self.contracts.items():
            expect(
                await self.admin.call(
                    "POST", "/v1/contracts", json=document, idempotent=True, headers=_key()
                ),
                201,
            )
            for period, values in self.inputs(contract_id).items():
                path = f"/v1/contracts/{contract_id}/periods/{period}/inputs"
                expect(await self.admin.call("PUT", path, json=values), 200)
        events = [
            cost(f"base-{f}-{m}", f, m, MONTHLY_COST) for f in self.parties.facilities for m in MONTHS
        ] + [_complete(f) for f in self.parties.facilities]
        await self._send(events)
        await self._until_ready(ready_within_s)

    async def _until_ready(self, within_s: float) -> None:
        deadline = time.monotonic() + within_s
        waiting = [(c, p) for c, (_, periods, _) in self.contracts.items() for p in periods]
        while waiting:
            contract_id, period = waiting[0]
            got = await self.billing.call("GET", f"/v1/contracts/{contract_id}/settlements/{period}")
            if got.status_code == 200 and got.json()["status"] == "draft":
                waiting.pop(0)
                continue
            if time.monotonic() > deadline:
                raise SetUpFailed(f"{contract_id} {period} not ready to finalize: {got.text[:300]}")
            await asyncio.sleep(1)

    async def _send(self, events: list[dict[str, Any]]) -> None:
        answer = await self.pipeline.call("POST", "/v1/events", json=events)
        if answer.status_code != 202 or answer.json()["rejected"]:
            self.problems.append(f"cost events answered {answer.status_code}: {answer.text[:300]}")
            return
        for event in events:
            if event["type"] == "cost.incurred":
                self.tally.add("cost_total", event["facility"], "value", Decimal(event["data"]["amount"]))
        self.tally.accepted(self.clock, len(events))

    async def run(self, stop: asyncio.Event, duration_s: float) -> None:
        await asyncio.gather(self._late_costs(stop), self._finalize_in_turn(stop, duration_s))

    async def _late_costs(self, stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            facility = self._rng.choice(self.parties.facilities)
            amount = Decimal(self._rng.randrange(1_000, 50_000)) / 100
            await self._send([cost(f"late-{n}", facility, self._rng.choice(MONTHS), amount)])
            await asyncio.sleep(1.0)

    async def _finalize_in_turn(self, stop: asyncio.Event, duration_s: float) -> None:
        """Every period finalized once, spread over 10 %–80 % of the soak."""
        turns = [(c, p) for c, (_, periods, _) in self.contracts.items() for p in periods]
        self._rng.shuffle(turns)
        step = 0.7 * duration_s / len(turns)
        for i, (contract_id, period) in enumerate(turns):
            if not await sleep_until(0.1 * duration_s + i * step, self.clock, stop):
                return
            path = f"/v1/contracts/{contract_id}/settlements/{period}/finalize"
            answer = await self.billing.call("POST", path, idempotent=True, headers=_key())
            self.finalizations.append(
                Finalization(round(self.clock(), 1), contract_id, period, answer.status_code)
            )
            if answer.status_code not in (200, 201):
                self.problems.append(
                    f"finalize {contract_id} {period}: {answer.status_code} {answer.text[:300]}"
                )

    async def statements(self) -> list[StatementCheck]:
        """Every soak period as read by the vendor, beside a what-if recomputation on today's data."""
        checks, self.adjustments = [], 0
        booked: list[Booked] = []
        for contract_id, (document, periods, _) in self.contracts.items():
            body = {"contract": document, "periods": periods, "inputs": self.inputs(contract_id)}
            simulated = expect(await self.admin.call("POST", "/v1/contracts:simulate", json=body), 200)
            for period, recomputed in zip(periods, simulated["statements"], strict=True):
                got = await self.billing.call("GET", f"/v1/contracts/{contract_id}/settlements/{period}")
                statement = expect(got, 200)
                adjustments = statement.get("adjustments") or []
                self.adjustments += len(adjustments)
                booked += [Booked(contract_id, period, str(a["id"])) for a in adjustments]
                checks.append(statement_check(contract_id, period, statement, recomputed))
        self.booked_adjustments = booked
        return checks

    def finalized(self) -> list[Booked]:
        """The periods a finalize succeeded for."""
        return [Booked(f.contract, f.period) for f in self.finalizations if f.status in (200, 201)]


def statement_check(
    contract_id: str, period: str, statement: dict[str, Any], recomputed: dict[str, Any]
) -> StatementCheck:
    adjusted: dict[str, Decimal] = {}
    for adjustment in statement.get("adjustments") or []:
        for line in adjustment["lines"]:
            adjusted[line["term_id"]] = adjusted.get(line["term_id"], ZERO) + Decimal(line["delta"])
    return StatementCheck(
        contract=contract_id,
        period=period,
        status=statement["status"],
        total=Decimal(statement["total"]),
        lines={line["term_id"]: Decimal(line["amount"]) for line in statement["lines"]},
        recomputed_total=Decimal(recomputed["total"]),
        recomputed_lines={line["term_id"]: Decimal(line["amount"]) for line in recomputed["lines"]},
        adjustments_total=sum((Decimal(a["total_delta"]) for a in statement.get("adjustments") or []), ZERO),
        adjustments_lines=adjusted,
    )


def _complete(facility: str) -> dict[str, Any]:
    return {
        "id": f"cost-complete-{facility}",
        "source": "soak-erp",
        "type": "feed.complete",
        "time": WATERMARK,
        "facility": facility,
        "data": {"feed": "cost", "through": WATERMARK},
    }


def _key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}
