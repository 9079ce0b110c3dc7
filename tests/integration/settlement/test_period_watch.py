"""The period watch checks every contract whatever one of them holds: a contract stored with a date it
cannot compute (written before such dates were refused) is logged and counted, and the others are
still announced; such a date is refused when written, naming the field (docs/contracts.md)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from settlement.adapters import tables
from settlement.domain.contract import parse_contract
from settlement.entrypoints.watch import PeriodWatch
from settlement.handlers import SettlementService
from tests.integration.settlement.conftest import SettlementStack
from tests.integration.settlement.own_schema import migrated_store
from tests.integration.settlement.test_contract_lifecycle import ADMIN, document
from tests.support.infrastructure import Infrastructure
from tests.support.waiting import exposed_metrics, metric_value
from tests.unit.settlement.fakes import FakeKpiReader
from vr_shared.identity import Identity
from vr_shared.roles import Role

WRITER = Identity(tenant="life-health", role=Role.TENANT_ADMIN, key_id="key-admin")


@pytest.mark.parametrize(
    ("changes", "paths"),
    [
        ({"start": "0026-01-01"}, ["$.start"]),
        ({"start": "0026-01-01", "end": "0026-12-31"}, ["$.start", "$.end"]),
        ({"end": "2100-01-01"}, ["$.end"]),
    ],
)
async def test_a_contract_dated_outside_the_accepted_range_is_refused_naming_the_field(
    stack: SettlementStack, changes: dict[str, str], paths: list[str]
) -> None:
    body = document("life-far", **changes)
    answer = await stack.settlement.post("/v1/contracts", json=body, headers=ADMIN)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    errors = answer.json()["errors"]
    assert [e["path"] for e in errors] == paths
    assert all("2000-01-01 to 2099-12-31" in e["message"] for e in errors)


async def test_one_contract_the_watch_cannot_compute_never_stops_it_for_the_others(
    infrastructure: Infrastructure,
) -> None:
    async with migrated_store(infrastructure) as (engine, store):
        # Stored directly, as a contract written before the range was checked would be.
        bad: dict[str, Any] = document("aaa-year-26", start="0026-01-01", end="0026-12-31", period="month")
        async with engine.begin() as conn:
            await conn.execute(
                insert(tables.contracts).values(
                    id=bad["id"], health_system=bad["health_system"], vendor=bad["vendor"], version=1
                )
            )
            await conn.execute(
                insert(tables.contract_versions).values(
                    contract_id=bad["id"], version=1, document=bad, created_by="legacy"
                )
            )
        good = parse_contract(document("zzz-good", start="2025-01-01", end="2025-06-30"))
        await store.create_contract(good, WRITER)
        watch = PeriodWatch(store, SettlementService(store, FakeKpiReader()), interval_s=3600)
        before = metric_value(exposed_metrics(), "vr_settlement_watch_failures_total")

        blocked = await watch.check()  # the bad one sorts first

        assert blocked == 2  # the good contract's two quarters: past their run-out, inputs never entered
        assert metric_value(exposed_metrics(), "vr_settlement_watch_failures_total") == before + 1
        events = await settlement_events(engine)
        assert events == [
            ("contract.updated", "zzz-good", None),
            ("statement.blocked", "zzz-good", "2025-Q1"),
            ("statement.blocked", "zzz-good", "2025-Q2"),
        ]
        assert await watch.check() == 2  # and again next round: nothing stopped


async def settlement_events(engine: AsyncEngine) -> list[tuple[str, str, str | None]]:
    e = tables.settlement_events.c
    async with engine.connect() as conn:
        rows = await conn.execute(select(e.type, e.contract_id, e.period).order_by(e.seq))
        return [(r.type, r.contract_id, r.period) for r in rows]
