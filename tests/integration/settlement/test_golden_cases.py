"""Every published golden case passes through the HTTP API (docs/contracts.md, tests/data/golden/)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.integration.settlement.conftest import SettlementStack, as_party
from tests.support.data import golden

GOLDEN = golden("settlement.json")
HEALTH_SYSTEM = as_party("golden-hs", facilities=("golden-hs-main",))


@pytest.mark.parametrize("case", GOLDEN["cases"], ids=[c["name"] for c in GOLDEN["cases"]])
async def test_golden_case_total_through_the_api(stack: SettlementStack, case: dict[str, Any]) -> None:
    contract = case["contract"]
    created = await stack.settlement.post("/v1/contracts", json=contract, headers=HEALTH_SYSTEM)
    assert created.status_code == 201, created.text
    path = f"/v1/contracts/{contract['id']}"
    put = await stack.settlement.put(
        f"{path}/periods/{case['period']}/inputs", json=case["inputs"], headers=HEALTH_SYSTEM
    )
    assert put.status_code == 200, put.text
    statement = await stack.settlement.get(f"{path}/settlements/{case['period']}", headers=HEALTH_SYSTEM)
    assert statement.status_code == 200, statement.text
    body = statement.json()
    assert body["total"] == case["expected_total"]
    assert body["status"] == "draft"  # the period and its run-out are long over
    assert body["contract_version"] == 1
    assert sum(Decimal(line["amount"]) for line in body["lines"]) == Decimal(body["total"])


async def test_readme_corridor_example_beyond_the_first_band(stack: SettlementStack) -> None:
    """tests/data/golden/README.md: target 100,000,000, actual 110,000,000, bands 3–8 % at 50 % and
    above 8 % at 80 % → 2,500,000 + 1,600,000 owed."""
    contract = {
        **GOLDEN["cases"][-1]["contract"],
        "id": "golden-corridor-110",
        "name": "golden-corridor-110",
    }
    assert contract["terms"][0]["kind"] == "risk_corridor"
    await stack.settlement.post("/v1/contracts", json=contract, headers=HEALTH_SYSTEM)
    path = "/v1/contracts/golden-corridor-110"
    inputs = {"target_cost": "100000000", "actual_cost": "110000000"}
    await stack.settlement.put(f"{path}/periods/2016/inputs", json=inputs, headers=HEALTH_SYSTEM)
    body = (await stack.settlement.get(f"{path}/settlements/2016", headers=HEALTH_SYSTEM)).json()
    assert body["total"] == "-4100000.00"
    steps = {s["name"]: s["value"] for s in body["lines"][0]["steps"]}
    assert (steps["bands[0].shared"], steps["bands[1].shared"]) == ("2500000.0000", "1600000.0000")
