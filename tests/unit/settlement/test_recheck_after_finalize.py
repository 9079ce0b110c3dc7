"""The recheck after finalize is never lost: when the KPI engine cannot answer it, the final statement
stays marked, and the period watch — or a repeated finalize — does it later, booking what changed while
the period was finalized (docs/settlement.md, "Finalize")."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from settlement.adapters.kpi_client import KpiEngineUnavailable
from settlement.domain.contract import Contract
from settlement.domain.sources import KpiReading, KpiRequest
from settlement.domain.stored import StoredContract
from settlement.entrypoints.watch import PeriodWatch
from settlement.handlers import SettlementService
from tests.unit.settlement.builders import reading
from tests.unit.settlement.fakes import FakeKpiReader, FakeSettlementStore
from tests.unit.settlement.test_settlement_service import AFTER_Q1, BILLING, _stored


@dataclass
class EngineAwayAfterFirstRead(FakeKpiReader):
    """Answers the statement's read, then is away until `back` is set; the data changes meanwhile."""

    back: bool = False

    async def read(self, contract: Contract, requests: list[KpiRequest]) -> dict[KpiRequest, KpiReading]:
        if self.reads >= 1 and not self.back:
            raise KpiEngineUnavailable("KPI engine unreachable: ConnectError")
        answer = await super().read(contract, requests)
        self.by_kpi["cpoe_rate"] = reading("0.90", "90", "100")  # a late order lands right after
        return answer


@dataclass
class WatchedStore(FakeSettlementStore):
    """The fake store with what the period watch asks of the real one."""

    contracts: dict[str, StoredContract] = field(default_factory=dict)

    async def finals_to_recheck(self) -> list[tuple[str, str]]:
        return [key for key, final in self.finals.items() if not final.rechecked]

    async def contract_ids(self) -> list[str]:
        return sorted(self.contracts)

    async def contract(self, contract_id: str) -> StoredContract | None:
        return self.contracts.get(contract_id)


def _away() -> tuple[WatchedStore, EngineAwayAfterFirstRead, SettlementService]:
    store = WatchedStore(contracts={"test-contract": _stored()})
    kpis = EngineAwayAfterFirstRead({"cpoe_rate": reading("0.85", "85", "100")})
    return store, kpis, SettlementService(store, kpis, clock=lambda: AFTER_Q1)


async def test_the_period_watch_does_a_recheck_the_engine_could_not_answer() -> None:
    store, kpis, service = _away()
    final, created = await service.finalize(_stored(), "2026-Q1", None, BILLING)
    assert created and final["total"] == "50000.00" and final["adjustments"] == []  # final all the same
    assert not store.finals[("test-contract", "2026-Q1")].rechecked

    kpis.back = True
    await PeriodWatch(store, service, interval_s=3600).check()  # type: ignore[arg-type]

    (adjustment,) = await store.adjustments("test-contract", "2026-Q1")
    assert (adjustment.total_delta, adjustment.total_after) == (Decimal("50000.00"), "100000.00")
    assert store.finals[("test-contract", "2026-Q1")].rechecked
    await PeriodWatch(store, service, interval_s=3600).check()  # type: ignore[arg-type]
    assert len(await store.adjustments("test-contract", "2026-Q1")) == 1


async def test_a_repeated_finalize_does_a_recheck_still_pending() -> None:
    _, kpis, service = _away()
    await service.finalize(_stored(), "2026-Q1", None, BILLING)
    kpis.back = True
    again, created = await service.finalize(_stored(), "2026-Q1", None, BILLING)
    assert not created and again["total"] == "50000.00"
    assert [a["total_after"] for a in again["adjustments"]] == ["100000.00"]
