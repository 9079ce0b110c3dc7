"""Every published golden case passes through the HTTP API (SPEC §6, ../shared/golden/)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.integration.settlement.conftest import SettlementStack, as_party

GOLDEN = json.loads((Path(__file__).parents[3] / ".." / "shared" / "golden" / "settlement.json").read_text())
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
