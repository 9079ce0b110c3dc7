"""The settlement handlers on fakes of their ports: finalize (complete only, once, idempotent) and
reconciliation (an adjustment from complete readings only, never a second one for the same change)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from settlement.domain.sources import MissingFeed
from settlement.domain.stored import StoredContract
from settlement.handlers import PeriodNotEnded, SettlementService, StatementIncomplete
from tests.unit.settlement.builders import contract, reading
from tests.unit.settlement.fakes import FakeKpiReader, FakeSettlementStore
from vr_shared.identity import Identity
from vr_shared.roles import Role

BILLING = Identity(tenant="acme-emr", role=Role.BILLING, key_id="key-billing")
INCENTIVE = {
    "id": "cpoe",
    "kind": "kpi_incentive",
    "kpi": "cpoe_rate",
    "direction": "higher_is_better",
    "baseline": "0.80",
    "target": "0.90",
    "max_reward": "100000.00",
}
AFTER_Q1 = datetime(2026, 7, 15, tzinfo=UTC)  # Q1 over and its 90-day run-out passed


def _service(kpis: FakeKpiReader, store: FakeSettlementStore, now: datetime = AFTER_Q1) -> SettlementService:
    return SettlementService(store, kpis, clock=lambda: now)


def _stored() -> StoredContract:
    return StoredContract(contract(INCENTIVE), 1, AFTER_Q1, AFTER_Q1)


async def test_finalize_freezes_a_complete_statement_once() -> None:
    store, kpis = FakeSettlementStore(), FakeKpiReader({"cpoe_rate": reading("0.85", "85", "100")})
    service = _service(kpis, store)
    first, created = await service.finalize(_stored(), "2026-Q1", "key-1", BILLING)
    assert kpis.reads == 2  # the statement's data, then the recheck once it is stored
    again, created_again = await service.finalize(_stored(), "2026-Q1", "key-1", BILLING)
    assert (created, created_again) == (True, False)
    assert first["total"] == again["total"] == "50000.00"  # halfway from baseline to target
    assert first["sha256"] == again["sha256"] and first["status"] == "final"
    assert kpis.reads == 2  # the repeat read nothing: it answered what is final


async def test_finalize_refuses_an_incomplete_statement_naming_the_feed() -> None:
    missing = (MissingFeed("asheville-main", "medication", None),)
    kpis = FakeKpiReader({"cpoe_rate": replace(reading("0.85", "85", "100"), missing=missing)})
    store = FakeSettlementStore()
    with pytest.raises(StatementIncomplete) as refused:
        await _service(kpis, store).finalize(_stored(), "2026-Q1", None, BILLING)
    assert refused.value.missing["missing_feeds"][0]["feed"] == "medication"
    assert store.finals == {}


async def test_a_period_is_not_finalized_before_it_ends() -> None:
    kpis = FakeKpiReader({"cpoe_rate": reading("0.85", "85", "100")})
    with pytest.raises(PeriodNotEnded):
        await _service(kpis, FakeSettlementStore(), now=datetime(2026, 3, 20, tzinfo=UTC)).finalize(
            _stored(), "2026-Q1", None, BILLING
        )


async def test_late_data_becomes_one_adjustment_and_the_same_data_none() -> None:
    store, kpis = FakeSettlementStore(), FakeKpiReader({"cpoe_rate": reading("0.85", "85", "100")})
    service = _service(kpis, store)
    await service.finalize(_stored(), "2026-Q1", None, BILLING)
    kpis.by_kpi["cpoe_rate"] = reading("0.90", "90", "100")  # late orders: the target is reached
    adjustment = await service.reconcile("test-contract", "2026-Q1", "kpi_update", "late orders")
    assert adjustment is not None and adjustment.total_delta == Decimal("50000.00")
    assert await service.reconcile("test-contract", "2026-Q1", "kpi_update", "again") is None
    assert len(await store.adjustments("test-contract", "2026-Q1")) == 1


async def test_no_adjustment_is_booked_from_incomplete_readings() -> None:
    store, kpis = FakeSettlementStore(), FakeKpiReader({"cpoe_rate": reading("0.85", "85", "100")})
    service = _service(kpis, store)
    await service.finalize(_stored(), "2026-Q1", None, BILLING)
    behind = (MissingFeed("asheville-main", "medication", "2026-03-15T04:00:00+00:00"),)
    kpis.by_kpi["cpoe_rate"] = replace(reading("0.95", "95", "100"), missing=behind)
    assert await service.reconcile("test-contract", "2026-Q1", "kpi_update", "partial data") is None
    assert store.adjustment_rows == {}


async def test_each_fact_writes_one_event_for_the_billing_system() -> None:
    """Finalize (twice) → one `statement.finalized` with the statement's SHA-256; late data → one
    `statement.adjusted` with the deltas (docs/webhooks.md)."""
    store, kpis = FakeSettlementStore(), FakeKpiReader({"cpoe_rate": reading("0.85", "85", "100")})
    service = _service(kpis, store)
    final, _ = await service.finalize(_stored(), "2026-Q1", None, BILLING)
    await service.finalize(_stored(), "2026-Q1", None, BILLING)
    kpis.by_kpi["cpoe_rate"] = reading("0.90", "90", "100")
    await service.reconcile("test-contract", "2026-Q1", "kpi_update", "late orders")
    await service.reconcile("test-contract", "2026-Q1", "kpi_update", "again")
    finalized, adjusted = store.events
    assert (finalized.type, finalized.period) == ("statement.finalized", "2026-Q1")
    assert finalized.data["sha256"] == final["sha256"] and finalized.data["total"] == "50000.00"
    assert (finalized.health_system, finalized.vendor) == (_stored().contract.health_system, "acme-emr")
    assert adjusted.type == "statement.adjusted"
    assert (adjusted.data["total_delta"], adjusted.data["total_after"]) == ("50000.00", "100000.00")
    assert adjusted.data["lines"] == [{"term_id": "cpoe", "delta": "50000.00"}]
    assert adjusted.data["adjustment_id"] == 1 and adjusted.data["reason"] == "late orders"


async def test_the_period_watch_announces_a_change_of_state_once() -> None:
    missing = (MissingFeed("asheville-main", "medication", None),)
    kpis = FakeKpiReader({"cpoe_rate": replace(reading("0.85", "85", "100"), missing=missing)})
    store = FakeSettlementStore()
    service = _service(kpis, store)
    assert await service.watch_periods(_stored()) == 1  # Q1 past its run-out without its data
    assert await service.watch_periods(_stored()) == 1
    assert [(e.type, e.period) for e in store.events] == [("statement.blocked", "2026-Q1")]
    kpis.by_kpi["cpoe_rate"] = reading("0.85", "85", "100")  # the feed is declared complete
    assert await service.watch_periods(_stored()) == 0
    await service.watch_periods(_stored())
    # Q1 is ready; so is Q2: over (within its run-out) with its data, it can be finalized already.
    assert [(e.type, e.period) for e in store.events] == [
        ("statement.blocked", "2026-Q1"),
        ("statement.ready", "2026-Q1"),
        ("statement.ready", "2026-Q2"),
    ]
    await service.finalize(_stored(), "2026-Q1", None, BILLING)
    await service.watch_periods(_stored())  # final: nothing more to announce
    assert [e.type for e in store.events][-1] == "statement.finalized"
