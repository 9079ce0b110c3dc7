"""A provisional reading is never money, through the API and the real KPI engine: a period that ended
yesterday, whose readmission rate can still change for 30 days, is `maturing`; finalize answers 409
naming the KPI and the day it matures, and the period watch announces nothing (docs/settlement.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from settlement.domain.contract import parse_contract
from settlement.entrypoints.watch import PeriodWatch
from tests.integration.settlement.conftest import SettlementStack, as_party
from tests.integration.settlement.own_schema import Kit, settlement_beside
from tests.integration.settlement.test_finalize_races import WRITER
from tests.integration.settlement.test_period_watch import settlement_events
from tests.support.infrastructure import Infrastructure
from tests.support.waiting import eventually

TENANT, FACILITY, VENDOR = "race-health", "maturing-main", "race-vendor"
HEALTH = as_party(TENANT, facilities=(FACILITY,))
PIPELINE = as_party(TENANT, role="pipeline", facilities=(FACILITY,))
BILLING = as_party(VENDOR, role="billing", vendor=True)


@pytest.fixture(scope="module")
async def kit(stack: SettlementStack, infrastructure: Infrastructure) -> AsyncIterator[Kit]:
    async with settlement_beside(stack, infrastructure) as own:
        yield own


def _yesterday_contract(contract_id: str) -> dict[str, Any]:
    """A contract of one day, yesterday (UTC): its period ended at midnight."""
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date()
    return {
        "id": contract_id,
        "name": "Readmissions",
        "health_system": TENANT,
        "vendor": VENDOR,
        "facilities": [FACILITY],
        "currency": "USD",
        "timezone": "UTC",
        "start": yesterday.isoformat(),
        "end": yesterday.isoformat(),
        "period": "month",
        "runout_days": 0,
        "data_completeness": "runout",
        "terms": [
            {
                "id": "readmissions",
                "kind": "kpi_incentive",
                "kpi": "readmission_rate_30d",
                "direction": "lower_is_better",
                "baseline": "0.20",
                "target": "0.10",
                "max_reward": "50000.00",
            }
        ],
    }


async def test_a_period_on_a_provisional_reading_is_maturing_and_not_finalized(
    stack: SettlementStack, kit: Kit
) -> None:
    document = _yesterday_contract("maturing-1")
    day = document["start"]
    matures_on = (datetime.fromisoformat(day) + timedelta(days=31)).date().isoformat()
    discharge = {
        "id": "maturing-discharge-1",
        "source": "adt",
        "type": "encounter.discharged",
        "time": f"{day}T12:00:00Z",
        "facility": FACILITY,
        "data": {
            "encounter_ref": "ENC-M1",
            "patient_ref": "MRN-M1",
            "encounter_class": "inpatient",
            "admitted_at": f"{day}T08:00:00Z",
            "disposition": "home",
        },
    }
    assert (
        await stack.ingest.client.post("/v1/events", json=[discharge], headers=PIPELINE)
    ).status_code == 202
    assert (await stack.settlement.post("/v1/contracts", json=document, headers=HEALTH)).status_code == 201
    path = f"/v1/contracts/maturing-1/settlements/{day[:7]}"

    async def statement() -> dict[str, Any]:
        return dict((await stack.settlement.get(path, headers=HEALTH)).json())

    # One index discharge and no readmission (yet): 0 % → the whole reward, from a provisional reading.
    current = await eventually(statement, lambda s: s["total"] == "50000.00")
    assert (current["status"], current["data_complete"]) == ("maturing", True)
    assert current["maturing"] == [
        {"term_id": "readmissions", "kpi": "readmission_rate_30d", "matures_on": matures_on}
    ]
    refused = await stack.settlement.post(f"{path}/finalize", headers=BILLING)
    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["title"] == "Statement maturing"
    assert f"readmission_rate_30d matures on {matures_on}" in refused.json()["detail"]
    assert refused.json()["maturing"] == current["maturing"]

    # The period watch (settlement on a schema of its own, reading the same engine) announces nothing.
    stored = await kit.store.create_contract(parse_contract(document), WRITER)
    assert await PeriodWatch(kit.store, kit.service, interval_s=3600).check() == 0
    assert await settlement_events(kit.engine) == [("contract.updated", stored.contract.id, None)]
