"""A change to a final period is never lost after it is stored (docs/settlement.md, "Adjustments"): an
input put, a reconciliation that waited for a reading to mature, or one that failed leaves the period
pending, and the period watch books the difference — exactly once — when it can."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

import pytest

from settlement import metrics
from settlement.adapters.kpi_client import KpiEngineRefused, KpiEngineUnavailable
from settlement.domain.contract import Contract
from settlement.domain.sources import KpiReading, KpiRequest
from settlement.domain.stored import StoredContract
from settlement.entrypoints.watch import PeriodWatch
from settlement.handlers import SettlementService
from tests.unit.settlement.builders import contract, reading
from tests.unit.settlement.fakes import FakeKpiReader
from tests.unit.settlement.test_maturation import DAY_AFTER_Q1, READMISSIONS
from tests.unit.settlement.test_recheck_after_finalize import WatchedStore
from tests.unit.settlement.test_settlement_service import AFTER_Q1, BILLING, INCENTIVE
from vr_shared.identity import Identity
from vr_shared.roles import Role

ADMIN = Identity(tenant="mission-health", role=Role.TENANT_ADMIN, key_id="key-admin")
KEY = ("test-contract", "2026-Q1")


@dataclass
class SwitchableReader(FakeKpiReader):
    """The KPI engine, unreachable while `away`."""

    away: bool = False

    async def read(self, contract: Contract, requests: list[KpiRequest]) -> dict[KpiRequest, KpiReading]:
        if self.away:
            raise KpiEngineUnavailable("KPI engine unreachable: ConnectError", unreachable=True)
        return await super().read(contract, requests)


def _watched(
    stored: StoredContract, kpis: FakeKpiReader, now: datetime
) -> tuple[WatchedStore, SettlementService]:
    store = WatchedStore(contracts={stored.contract.id: stored})
    return store, SettlementService(store, kpis, clock=lambda: now)


async def test_an_input_put_on_a_final_period_stands_while_the_engine_is_away_and_the_watch_books_it() -> (
    None
):
    """The reward is an input: halfway to the CPOE target earns half of it."""
    stored = StoredContract(contract({**INCENTIVE, "max_reward": {"input": "reward"}}), 1, AFTER_Q1, AFTER_Q1)
    kpis = SwitchableReader({"cpoe_rate": reading("0.85", "85", "100")})
    store, service = _watched(stored, kpis, AFTER_Q1)
    await service.put_inputs(*KEY, {"reward": Decimal("100000")}, ADMIN)
    final, _ = await service.finalize(stored, "2026-Q1", None, BILLING)
    assert final["total"] == "50000.00" and store.finals[KEY].rechecked

    kpis.away = True
    answered = await service.put_inputs(*KEY, {"reward": Decimal("200000")}, ADMIN)  # no error: it is stored

    assert answered == {"reward": "200000"} and store.period_inputs[KEY] == {"reward": Decimal("200000")}
    assert not store.finals[KEY].rechecked and await store.adjustments(*KEY) == []
    kpis.away = False
    await PeriodWatch(store, service, interval_s=3600).check()  # type: ignore[arg-type]
    await PeriodWatch(store, service, interval_s=3600).check()  # type: ignore[arg-type]
    (adjustment,) = await store.adjustments(*KEY)
    assert (adjustment.total_delta, adjustment.total_after) == (Decimal("50000.00"), "100000.00")
    assert adjustment.reason == "period inputs changed after finalization"
    assert store.finals[KEY].rechecked


async def test_an_input_put_reconciled_at_once_books_one_adjustment_and_leaves_nothing_pending() -> None:
    stored = StoredContract(contract({**INCENTIVE, "max_reward": {"input": "reward"}}), 1, AFTER_Q1, AFTER_Q1)
    store, service = _watched(stored, FakeKpiReader({"cpoe_rate": reading("0.85", "85", "100")}), AFTER_Q1)
    await service.put_inputs(*KEY, {"reward": Decimal("100000")}, ADMIN)
    await service.finalize(stored, "2026-Q1", None, BILLING)
    await service.put_inputs(*KEY, {"reward": Decimal("120000")}, ADMIN)
    (adjustment,) = await store.adjustments(*KEY)
    assert adjustment.total_delta == Decimal("10000.00") and store.finals[KEY].rechecked
    await PeriodWatch(store, service, interval_s=3600).check()  # type: ignore[arg-type]
    assert len(await store.adjustments(*KEY)) == 1


async def test_a_late_change_on_a_provisional_reading_is_booked_once_by_the_watch_when_it_matures() -> None:
    """A final whose readmission rate was provisional (finalized before maturation gated money): a late
    readmission's notice finds the recomputation provisional and books nothing. No notice comes when the
    reading matures; the period stays pending and the watch books it then — once."""
    stored = StoredContract(contract(READMISSIONS, runout_days=0), 1, DAY_AFTER_Q1, DAY_AFTER_Q1)
    kpis = FakeKpiReader({"readmission_rate_30d": reading("0.08", "8", "100")})
    store, service = _watched(stored, kpis, DAY_AFTER_Q1)
    final, _ = await service.finalize(stored, "2026-Q1", None, BILLING)
    assert final["total"] == "50000.00"
    store.finals[KEY] = replace(store.finals[KEY], basis=_provisional_basis(store.finals[KEY].basis))

    late = replace(reading("0.12", "12", "100"), status="provisional")  # a late readmission
    kpis.by_kpi["readmission_rate_30d"] = late
    assert await service.reconcile(*KEY, "kpi_update", "late KPI data: readmission_rate_30d") is None
    await PeriodWatch(store, service, interval_s=3600).check()  # type: ignore[arg-type]
    assert await store.adjustments(*KEY) == [] and not store.finals[KEY].rechecked  # still provisional

    kpis.by_kpi["readmission_rate_30d"] = replace(late, status="mature")  # 1 May: mature, no notice
    await PeriodWatch(store, service, interval_s=3600).check()  # type: ignore[arg-type]
    await PeriodWatch(store, service, interval_s=3600).check()  # type: ignore[arg-type]
    (adjustment,) = await store.adjustments(*KEY)
    assert (adjustment.total_delta, adjustment.total_after) == (Decimal("-10000.00"), "40000.00")
    assert adjustment.reason == "late KPI data: readmission_rate_30d"
    assert store.finals[KEY].rechecked


async def test_a_recheck_that_had_to_wait_for_maturation_stays_pending() -> None:
    stored = StoredContract(contract(READMISSIONS, runout_days=0), 1, DAY_AFTER_Q1, DAY_AFTER_Q1)
    kpis = FakeKpiReader({"readmission_rate_30d": reading("0.08", "8", "100")})
    store, service = _watched(stored, kpis, DAY_AFTER_Q1)
    await service.finalize(stored, "2026-Q1", None, BILLING)
    await store.ask_recheck(*KEY, "data changed after finalization, on readings that were provisional")
    kpis.by_kpi["readmission_rate_30d"] = replace(reading("0.10", "10", "100"), status="provisional")
    assert await service.recheck(*KEY) is None
    assert not store.finals[KEY].rechecked


def _provisional_basis(basis: dict[str, object]) -> dict[str, object]:
    readings = [{**item, "status": "provisional"} for item in basis["kpi_readings"]]  # type: ignore[attr-defined]
    return {**basis, "kpi_readings": readings}


@dataclass
class CountingReader(FakeKpiReader):
    """Fails every read with `failure`, counting the reads."""

    failure: Exception | None = None

    async def read(self, contract: Contract, requests: list[KpiRequest]) -> dict[KpiRequest, KpiReading]:
        self.reads += 1
        assert self.failure is not None
        raise self.failure


def _three_contracts(kpis: FakeKpiReader) -> tuple[WatchedStore, SettlementService]:
    contracts = {
        name: StoredContract(contract(INCENTIVE, id=name), 1, AFTER_Q1, AFTER_Q1) for name in ("a", "b", "c")
    }
    store = WatchedStore(contracts=contracts)
    return store, SettlementService(store, kpis, clock=lambda: AFTER_Q1)


async def test_the_watch_ends_its_round_at_the_first_contract_when_the_engine_is_unreachable() -> None:
    """Each further contract would only wait the KPI timeout again."""
    kpis = CountingReader(
        failure=KpiEngineUnavailable("KPI engine unreachable: ConnectTimeout", unreachable=True)
    )
    store, service = _three_contracts(kpis)
    with pytest.raises(KpiEngineUnavailable):
        await PeriodWatch(store, service, interval_s=3600).check()  # type: ignore[arg-type]
    assert kpis.reads == 1


async def test_the_watch_goes_on_past_a_contract_the_engine_refuses_and_counts_it() -> None:
    kpis = CountingReader(failure=KpiEngineRefused("KPI engine answered 422: range too long"))
    store, service = _three_contracts(kpis)
    before = metrics.WATCH_FAILURES._value.get()
    await PeriodWatch(store, service, interval_s=3600).check()  # type: ignore[arg-type]
    assert kpis.reads == 3 and metrics.WATCH_FAILURES._value.get() == before + 3


async def test_a_pending_final_the_watch_cannot_reconcile_stays_pending_and_is_counted() -> None:
    stored = StoredContract(contract(INCENTIVE), 1, AFTER_Q1, AFTER_Q1)
    kpis = SwitchableReader({"cpoe_rate": reading("0.85", "85", "100")})
    store, service = _watched(stored, kpis, AFTER_Q1)
    await service.finalize(stored, "2026-Q1", None, BILLING)
    await store.ask_recheck(*KEY, "late KPI data: cpoe_rate")
    refusing = CountingReader(failure=KpiEngineRefused("KPI engine answered 401: token refused"))
    service = SettlementService(store, refusing, clock=lambda: AFTER_Q1)
    before = metrics.RECONCILIATION_FAILURES.labels("period_watch")._value.get()
    await PeriodWatch(store, service, interval_s=3600).check()  # type: ignore[arg-type]
    assert not store.finals[KEY].rechecked
    assert metrics.RECONCILIATION_FAILURES.labels("period_watch")._value.get() == before + 1
    assert metrics.FINALS_PENDING._value.get() == 1
