"""Finalize never races the data (docs/settlement.md, "Finalize"): a change that lands while a period is
being finalized — a late event's KPI change, a period input put — is in the final statement or booked
as exactly one adjustment, whichever order things happen in.

The KPI values come from the real pipeline (ingest → broker → KPI engine, read over HTTP); settlement
runs on a schema of its own, driven step by step: the test decides when finalize has read its data,
when a change lands, and when its change notice is handled. The randomized test runs the real
change-feed consumer beside finalizations while late events and input changes stream in.
"""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from settlement.domain.contract import Contract, parse_contract
from settlement.domain.statement import kpi_requests
from settlement.domain.stored import StoredContract
from settlement.entrypoints.updates import KpiUpdatesConsumer
from tests.integration.settlement.conftest import SettlementStack, as_party
from tests.integration.settlement.own_schema import Kit, settlement_beside
from tests.support.infrastructure import Infrastructure
from tests.support.waiting import eventually
from vr_shared.identity import Identity
from vr_shared.kafka import create_consumer
from vr_shared.roles import Role

TENANT, VENDOR, CATEGORY = "race-health", "race-vendor", "total_cost_of_care"
PERIOD = "2025-03"
WRITER = Identity(tenant=TENANT, role=Role.TENANT_ADMIN, key_id="key-admin")
BILLING = Identity(tenant=VENDOR, role=Role.BILLING, key_id="key-billing", tenant_kind="vendor")


@pytest.fixture(scope="module")
async def kit(stack: SettlementStack, infrastructure: Infrastructure) -> AsyncIterator[Kit]:
    async with settlement_beside(stack, infrastructure) as own:
        yield own


def _contract(contract_id: str, facility: str) -> Contract:
    """A corridor on the period's cost against a target entered per period: the vendor is owed half of
    what the cost stays below the target."""
    return parse_contract(
        {
            "id": contract_id,
            "name": "Cost corridor",
            "health_system": TENANT,
            "vendor": VENDOR,
            "facilities": [facility],
            "currency": "USD",
            "timezone": "UTC",
            "start": "2025-01-01",
            "end": "2025-12-31",
            "period": "month",
            "runout_days": 0,
            "data_completeness": "runout",
            "terms": [
                {
                    "id": "corridor",
                    "kind": "risk_corridor",
                    "actual": {"kpi": "cost_total", "dimension": {"category": CATEGORY}},
                    "target": {"input": "target"},
                    "bands": [{"from": "0", "share": "0.50"}],
                }
            ],
        }
    )


@dataclass
class Case:
    """One contract on a facility of its own, with its cost events so far."""

    kit: Kit
    stored: StoredContract
    facility: str
    costs: list[Decimal]

    @property
    def contract_id(self) -> str:
        return self.stored.contract.id

    async def add_cost(self, amount: Decimal, day: int) -> tuple[str, str, str, date]:
        """A late cost event through ingest; answers the change notice it will cause."""
        event = {
            "id": f"cost-{uuid.uuid4().hex[:12]}",
            "source": "erp",
            "type": "cost.incurred",
            "time": f"2025-03-{day:02d}T12:00:00Z",
            "facility": self.facility,
            "data": {"category": CATEGORY, "amount": f"{amount:.2f}"},
        }
        pipeline = as_party(TENANT, role="pipeline", facilities=(self.facility,))
        answer = await self.kit.stack.ingest.client.post("/v1/events", json=[event], headers=pipeline)
        assert answer.status_code == 202, answer.text
        self.costs.append(amount)
        return (TENANT, self.facility, "cost_total", date(2025, 3, day))

    async def engine_has_every_cost(self) -> None:
        """Until the KPI engine reads the sum of every cost sent (asked without the hook)."""
        contract = self.stored.contract
        period = self.kit.service.period(contract, PERIOD)
        requests = kpi_requests(contract, period)

        async def actual() -> Decimal | None:
            return (await self.kit.reader.inner.read(contract, requests))[requests[0]].value

        await eventually(actual, lambda value: value == sum(self.costs))

    async def recomputed_total(self) -> Decimal:
        """The period's statement computed now, from today's data."""
        inputs = await self.kit.store.inputs(self.contract_id, PERIOD)
        period = self.kit.service.period(self.stored.contract, PERIOD)
        computed = await self.kit.service.compute(self.stored.contract, 1, period, inputs, published=False)
        return Decimal(computed.statement["total"])

    async def booked(self) -> tuple[Decimal, list[Decimal]]:
        """The final total and every adjustment's delta."""
        final = await self.kit.store.final(self.contract_id, PERIOD)
        assert final is not None
        adjustments = await self.kit.store.adjustments(self.contract_id, PERIOD)
        return Decimal(final.statement["total"]), [a.total_delta for a in adjustments]


async def _case(kit: Kit, name: str, *, cost: str = "50000", target: str = "100000") -> Case:
    facility = f"race-{name}"
    stored = await kit.store.create_contract(_contract(f"race-{name}", facility), WRITER)
    case = Case(kit, stored, facility, [])
    await case.add_cost(Decimal(cost), day=3)
    await kit.store.put_inputs(case.contract_id, PERIOD, {"target": Decimal(target)}, WRITER)
    await case.engine_has_every_cost()
    return case


async def _change(case: Case, change: str) -> None:
    """Make the change and handle it as settlement does: a late event's change notice reaches the
    change-feed consumer once the engine has recorded it; an input put reconciles in its request."""
    if change == "late_event":
        notice = await case.add_cost(Decimal("20000"), day=20)
        await case.engine_has_every_cost()
        await case.kit.notices.reconcile({notice})
    else:
        await case.kit.service.put_inputs(case.contract_id, PERIOD, {"target": Decimal("120000")}, WRITER)


# Half of what the cost stays below the target: 50,000 of 100,000 → 25,000.00 before any change; a late
# cost of 20,000 → 15,000.00; a target of 120,000 → 35,000.00.
BEFORE, AFTER = Decimal("25000.00"), {"late_event": Decimal("15000.00"), "inputs": Decimal("35000.00")}


@pytest.mark.parametrize("change", ["late_event", "inputs"])
@pytest.mark.parametrize("order", ["before_the_read", "between_read_and_insert", "after_the_insert"])
async def test_a_change_during_finalize_is_in_the_final_statement_or_exactly_one_adjustment(
    kit: Kit, order: str, change: str
) -> None:
    case = await _case(kit, f"{order.replace('_', '-')}-{change.replace('_', '-')}")
    if order == "before_the_read":
        await _change(case, change)
    if order == "between_read_and_insert":
        kit.reader.hold_next_read()
    finalizing = asyncio.create_task(kit.service.finalize(case.stored, PERIOD, None, BILLING))
    if order == "between_read_and_insert":
        await kit.reader.read_done.wait()  # finalize has read the data; nothing is final yet
        await _change(case, change)  # its reconciliation finds nothing final
        assert await kit.store.final(case.contract_id, PERIOD) is None
        kit.reader.release()
    final, created = await finalizing
    if order == "after_the_insert":
        await _change(case, change)

    total, deltas = await case.booked()
    expected = AFTER[change]
    assert created and Decimal(final["total"]) == total
    if order == "before_the_read":
        assert (total, deltas) == (expected, [])
    else:
        assert (total, deltas) == (BEFORE, [expected - BEFORE])
    assert total + sum(deltas) == await case.recomputed_total() == expected
    # Handled again (a redelivered notice, a repeated put, a requested reconciliation): nothing more.
    await _change_again(case, change)
    assert await kit.service.reconcile(case.contract_id, PERIOD, "on_demand", "again") is None
    assert (await case.booked())[1] == deltas


async def _change_again(case: Case, change: str) -> None:
    if change == "late_event":
        await case.kit.notices.reconcile({(TENANT, case.facility, "cost_total", date(2025, 3, 20))})
    else:
        await case.kit.service.put_inputs(case.contract_id, PERIOD, {"target": Decimal("120000")}, WRITER)


async def test_finalize_amid_streaming_late_events_and_input_changes_books_every_change_once(
    kit: Kit, infrastructure: Infrastructure
) -> None:
    """Rounds of: a contract, late cost events and target changes streaming in at random moments, and a
    finalize among them (held a random while between its read and its insert); the real change-feed consumer
    handles the engine's notices. At the end, final + Σ adjustments = the statement recomputed on
    today's data, every round. `VR_FINALIZE_RACE_SEED` repeats a run; `VR_FINALIZE_RACE_SECONDS` sets
    its budget."""
    seed = int(os.environ.get("VR_FINALIZE_RACE_SEED") or random.randrange(2**32))
    budget_s = float(os.environ.get("VR_FINALIZE_RACE_SECONDS") or "8")
    print(f"finalize race: VR_FINALIZE_RACE_SEED={seed}")
    rng = random.Random(seed)
    consumer = create_consumer(
        infrastructure.kafka_bootstrap_servers,
        kit.stack.settings.updates_topic,
        group_id=f"race-{uuid.uuid4().hex[:8]}",
        client_id="race-test",
        session_timeout_ms=6000,
    )
    await consumer.start()
    feed = asyncio.create_task(
        KpiUpdatesConsumer(consumer, kit.store, kit.service, retry_backoff_s=0.2).run()
    )
    loop = asyncio.get_running_loop()
    deadline, rounds = loop.time() + budget_s, 0
    try:
        while rounds == 0 or loop.time() < deadline:
            rounds += 1
            case = await _case(kit, f"random-{seed}-{rounds}")
            changes = await _stream_and_finalize(case, rng)
            await case.engine_has_every_cost()
            total, deltas = await eventually(case.booked, _adds_up_to(await case.recomputed_total()))
            expected = total + sum(deltas)
            assert not feed.done(), feed
            print(f"round {rounds}: {changes} changes, final {total}, adjustments {deltas} → {expected}")
    finally:
        feed.cancel()
        await asyncio.wait([feed])
        await consumer.stop()


def _adds_up_to(expected: Decimal) -> Callable[[tuple[Decimal, list[Decimal]]], bool]:
    return lambda booked: booked[0] + sum(booked[1]) == expected


async def _stream_and_finalize(case: Case, rng: random.Random) -> int:
    """Late costs and target changes at random moments over a second and a half, and a finalize among
    them whose read is held up to a second before it stores the statement; how many changes."""
    moments = sorted(rng.uniform(0, 1.5) for _ in range(rng.randint(2, 6)))

    async def stream() -> None:
        started = asyncio.get_running_loop().time()
        for moment in moments:
            await asyncio.sleep(max(0.0, started + moment - asyncio.get_running_loop().time()))
            if rng.random() < 0.5:
                await case.add_cost(Decimal(rng.randint(1, 300) * 100), day=rng.randint(1, 31))
            else:
                target = {"target": Decimal(rng.randint(40, 160) * 1000)}
                await case.kit.service.put_inputs(case.contract_id, PERIOD, target, WRITER)

    async def finalize() -> Any:
        await asyncio.sleep(rng.uniform(0.2, 1.2))
        case.kit.reader.delay_next_read(rng.uniform(0.2, 1.0))  # nothing else reads before it: none is final
        return await case.kit.service.finalize(case.stored, PERIOD, None, BILLING)

    await asyncio.gather(stream(), finalize())
    return len(moments)
