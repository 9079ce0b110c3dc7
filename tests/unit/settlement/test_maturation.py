"""A provisional reading is never money (docs/settlement.md): a statement resting on a reading still
within its KPI's maturation is `maturing`, finalize refuses it naming the KPI and the day it matures,
and no `statement.ready` is announced before that day."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from kpi_engine.domain.catalogue import CATALOGUE
from settlement.domain.stored import StoredContract
from settlement.handlers import SettlementService, StatementMaturing
from tests.unit.settlement.builders import contract, reading
from tests.unit.settlement.fakes import FakeKpiReader, FakeSettlementStore
from tests.unit.settlement.test_settlement_service import BILLING
from vr_shared.kpis import KPI_MATURATION_DAYS

READMISSIONS = {
    "id": "readmissions",
    "kind": "kpi_incentive",
    "kpi": "readmission_rate_30d",
    "direction": "lower_is_better",
    "baseline": "0.20",
    "target": "0.10",
    "max_reward": "50000.00",
}
# Q1 2026 (New York) ended at 04:00 UTC on 1 April; with no run-out it is finalizable from then — as far
# as its feeds go. A readmission within 30 days of a March discharge can still happen until 1 May.
DAY_AFTER_Q1 = datetime(2026, 4, 2, 12, tzinfo=UTC)


def _stored() -> StoredContract:
    return StoredContract(contract(READMISSIONS, runout_days=0), 1, DAY_AFTER_Q1, DAY_AFTER_Q1)


def _provisional() -> FakeKpiReader:
    return FakeKpiReader({"readmission_rate_30d": replace(reading("0.08", "8", "100"), status="provisional")})


async def test_finalize_refuses_a_provisional_reading_naming_the_kpi_and_the_day_it_matures() -> None:
    store = FakeSettlementStore()
    service = SettlementService(store, _provisional(), clock=lambda: DAY_AFTER_Q1)
    with pytest.raises(StatementMaturing) as refused:
        await service.finalize(_stored(), "2026-Q1", None, BILLING)
    assert refused.value.maturing == [
        {"term_id": "readmissions", "kpi": "readmission_rate_30d", "matures_on": "2026-05-01"}
    ]
    assert "readmission_rate_30d matures on 2026-05-01" in str(refused.value)
    assert store.finals == {} and store.events == []


async def test_a_statement_on_a_provisional_reading_is_maturing_then_draft_once_mature() -> None:
    kpis = _provisional()
    service = SettlementService(FakeSettlementStore(), kpis, clock=lambda: DAY_AFTER_Q1)
    maturing = await service.statement(_stored(), "2026-Q1")
    assert (maturing["status"], maturing["data_complete"], maturing["total"]) == (
        "maturing",
        True,
        "50000.00",
    )
    assert maturing["maturing"][0]["matures_on"] == "2026-05-01"
    assert maturing["lines"][0]["inputs"]["kpi"]["matures_on"] == "2026-05-01"

    kpis.by_kpi["readmission_rate_30d"] = reading("0.08", "8", "100")  # 1 May: the engine says mature
    mature = await service.statement(_stored(), "2026-Q1")
    assert (mature["status"], mature["maturing"]) == ("draft", [])
    assert "matures_on" not in mature["lines"][0]["inputs"]["kpi"]


async def test_statement_ready_is_announced_only_once_every_reading_is_mature() -> None:
    store, kpis = FakeSettlementStore(), _provisional()
    service = SettlementService(store, kpis, clock=lambda: DAY_AFTER_Q1)
    await service.watch_periods(_stored())
    assert store.events == []  # Q1 has ended with its data, but its readmission rate can still change
    kpis.by_kpi["readmission_rate_30d"] = reading("0.08", "8", "100")
    await service.watch_periods(_stored())
    assert [(e.type, e.period) for e in store.events] == [("statement.ready", "2026-Q1")]
    final, created = await service.finalize(_stored(), "2026-Q1", None, BILLING)
    assert created and final["total"] == "50000.00"


def test_settlement_knows_every_kpi_maturation_the_engine_applies() -> None:
    engine = {name: k.maturation_days for name, k in CATALOGUE.items() if k.maturation_days}
    assert engine == KPI_MATURATION_DAYS
