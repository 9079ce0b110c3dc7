"""Every list is paged with a cursor (docs/api.md, "Lists"): paging through sees each item once, in order,
and a long contract's settlements cost a page of periods, not all of them."""

from __future__ import annotations

import uuid
from typing import Any

from tests.integration.settlement.conftest import SettlementStack, as_party
from tests.integration.settlement.test_contract_lifecycle import document

TENANT, VENDOR = "life-health", "life-vendor"  # the parties test_contract_lifecycle's documents name
ADMIN = as_party(TENANT, facilities=("life-main", "life-west"))


async def _all_pages(stack: SettlementStack, path: str, limit: int) -> list[list[dict[str, Any]]]:
    pages, after = [], None
    while True:
        params: dict[str, Any] = {"limit": limit, **({"after": after} if after else {})}
        answer = await stack.settlement.get(path, params=params, headers=ADMIN)
        assert answer.status_code == 200, answer.text
        pages.append(answer.json()["items"])
        after = answer.json()["next"]
        if after is None:
            return pages


async def test_paging_through_120_contracts_with_limit_50_sees_each_once(stack: SettlementStack) -> None:
    prefix = f"page-{uuid.uuid4().hex[:6]}"
    made = {f"{prefix}-{i:03d}" for i in range(120)}
    for contract_id in sorted(made):
        created = await stack.settlement.post("/v1/contracts", json=document(contract_id), headers=ADMIN)
        assert created.status_code == 201, created.text
    pages = await _all_pages(stack, "/v1/contracts", 50)
    seen = [c["id"] for items in pages for c in items if c["id"].startswith(prefix)]
    assert sorted(seen) == seen and set(seen) == made and len(seen) == 120  # each once, in order
    assert all(len(items) <= 50 for items in pages) and len(pages) >= 3


async def test_a_long_contracts_settlements_come_a_page_of_periods_at_a_time(stack: SettlementStack) -> None:
    contract_id = f"monthly-{uuid.uuid4().hex[:6]}"
    body = document(contract_id, period="month", start="2024-01-01", end="2030-12-31")
    assert (await stack.settlement.post("/v1/contracts", json=body, headers=ADMIN)).status_code == 201
    path = f"/v1/contracts/{contract_id}/settlements"
    first = (await stack.settlement.get(path, headers=ADMIN)).json()
    assert [s["period"] for s in first["items"]] == [f"2024-{m:02d}" for m in range(1, 13)]  # 12 by default
    pages = await _all_pages(stack, path, 12)
    periods = [s["period"] for items in pages for s in items]
    assert periods[:13] == [*(f"2024-{m:02d}" for m in range(1, 13)), "2025-01"]
    assert len(periods) == len(set(periods)) and periods == sorted(periods)


async def test_a_cursor_this_api_did_not_make_is_422_naming_after(stack: SettlementStack) -> None:
    answer = await stack.settlement.get("/v1/contracts", params={"after": "%%%"}, headers=ADMIN)
    assert answer.status_code == 422 and answer.json()["errors"][0]["path"] == "$.query.after"
