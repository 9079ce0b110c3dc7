"""Missing data is never money, through the gateway as the parties meet it (docs/completeness.md,
docs/settlement.md).

A quarterly shared-savings contract whose expenditure is `cost_total[total_cost_of_care]`, benchmark
10,000,000.00, sharing rate 0.5 × quality score, savings capped at 10 % of the benchmark. With no cost
event at all, the old engine read the expenditure as 0 and paid the cap, 1,000,000.00. Now: no data,
0.00, and finalize refuses until the pipeline has sent the quarter and declared it complete.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from typer.testing import CliRunner

from tests.integration.gateway.conftest import GatewayStack
from tests.integration.gateway.test_gateway import key, tenant
from tests.support.waiting import eventually
from vr_cli.main import app

ZONE = "America/New_York"  # the zone test_gateway's `tenant` gives a health system


@dataclass
class Parties:
    health: str
    vendor: str
    facility: str
    admin: dict[str, str]  # the health system's tenant admin
    pipeline: dict[str, str]
    billing: dict[str, str]  # the vendor's billing system


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _parties(stack: GatewayStack) -> Parties:
    """A New York health system with one facility, a vendor, and the keys the test acts with."""
    facility = f"mdn-main-{uuid.uuid4().hex[:8]}"
    health, vendor = await tenant(stack, facilities=(facility,)), await tenant(stack, kind="vendor")
    return Parties(
        health,
        vendor,
        facility,
        _bearer(await key(stack, health, "tenant_admin")),
        _bearer(await key(stack, health, "pipeline")),
        _bearer(await key(stack, vendor, "billing")),
    )


def _contract(p: Parties, **changes: Any) -> dict[str, Any]:
    return {
        "id": f"{p.health}-savings",
        "name": "Cost of care partnership",
        "health_system": p.health,
        "vendor": p.vendor,
        "facilities": [p.facility],
        "currency": "USD",
        "timezone": ZONE,
        "start": "2026-01-01",
        "end": "2027-12-31",
        "period": "quarter",
        "runout_days": 0,
        "terms": [
            {
                "id": "savings",
                "kind": "shared_savings",
                "expenditure": {"kpi": "cost_total", "dimension": {"category": "total_cost_of_care"}},
                "benchmark": {"input": "benchmark"},
                "savings_rate": "0.5",
                "quality_score": {"input": "quality"},
                "savings_caps": [{"rate": "0.10", "of": "benchmark"}],
            }
        ],
        **changes,
    }


def _cost(p: Parties, month: int, amount: str) -> dict[str, Any]:
    return {
        "id": f"cost-2026-{month:02d}",
        "source": "erp",
        "type": "cost.incurred",
        "time": f"2026-{month:02d}-15T12:00:00-05:00",
        "facility": p.facility,
        "data": {"category": "total_cost_of_care", "amount": amount},
    }


def _complete_through(p: Parties, through: str) -> dict[str, Any]:
    return {
        "id": f"cost-complete-{through}",
        "source": "erp",
        "type": "feed.complete",
        "time": through,
        "facility": p.facility,
        "data": {"feed": "cost", "through": through},
    }


async def _post_events(stack: GatewayStack, p: Parties, events: list[dict[str, Any]]) -> None:
    posted = await stack.client.post("/v1/events", json=events, headers=p.pipeline)
    assert posted.status_code == 202 and posted.json()["rejected"] == 0, posted.text


async def _statement(stack: GatewayStack, p: Parties, contract_id: str) -> dict[str, Any]:
    got = await stack.client.get(f"/v1/contracts/{contract_id}/settlements/2026-Q1", headers=p.billing)
    assert got.status_code == 200, got.text
    return dict(got.json())


async def _finalize(stack: GatewayStack, p: Parties, contract_id: str) -> httpx.Response:
    return await stack.client.post(
        f"/v1/contracts/{contract_id}/settlements/2026-Q1/finalize", headers=p.billing
    )


async def test_a_silent_cost_feed_pays_nothing_and_a_declared_quarter_pays_exactly(
    stack: GatewayStack,
) -> None:
    p = await _parties(stack)
    contract = _contract(p)
    created = await stack.client.post("/v1/contracts", json=contract, headers=p.admin)
    assert created.status_code == 201, created.text
    inputs = f"/v1/contracts/{contract['id']}/periods/2026-Q1/inputs"

    # A quality score entered as a percentage is refused, naming the input and the term parameter.
    wrong = await stack.client.put(
        inputs, json={"benchmark": "10000000.00", "quality": "89.34"}, headers=p.admin
    )
    assert wrong.status_code == 422
    (error,) = wrong.json()["errors"]
    assert error["path"] == "$.quality" and "$.terms[0].quality_score" in error["message"]
    entered = await stack.client.put(
        inputs, json={"benchmark": "10000000.00", "quality": "1"}, headers=p.admin
    )
    assert entered.status_code == 200, entered.text

    # No cost event was ever sent: no data, not a cost of 0 — and not 1,000,000.00 owed to the vendor.
    silent = await _statement(stack, p, contract["id"])
    line = silent["lines"][0]
    assert (silent["total"], line["amount"], line["reason"]) == ("0.00", "0.00", "no_kpi_data")
    assert (
        line["inputs"]["expenditure"]["value"] is None and line["inputs"]["expenditure"]["complete"] is False
    )
    assert silent["data_complete"] is False and silent["status"] == "blocked"  # run-out 0 days: passed
    refused = await _finalize(stack, p, contract["id"])
    assert refused.status_code == 409, refused.text
    assert refused.json()["no_kpi_data"][0]["term_id"] == "savings"
    assert {(m["facility"], m["feed"], m["complete_through"]) for m in refused.json()["missing_feeds"]} == {
        (p.facility, "cost", None)
    }

    # January and February sent and declared; March not yet: still refused, naming the facility and feed.
    await _post_events(
        stack,
        p,
        [
            _cost(p, 1, "4000000.00"),
            _cost(p, 2, "3000000.00"),
            _complete_through(p, "2026-03-01T00:00:00-05:00"),
        ],
    )
    two_months = await eventually(
        lambda: _statement(stack, p, contract["id"]),
        lambda s: s["lines"][0]["inputs"]["expenditure"]["value"] == "7000000.00",
    )
    assert two_months["data_complete"] is False
    refused = await _finalize(stack, p, contract["id"])
    assert refused.status_code == 409
    assert [(m["facility"], m["feed"], m["complete_through"]) for m in refused.json()["missing_feeds"]] == [
        (p.facility, "cost", "2026-03-01T05:00:00+00:00")
    ]

    # March arrives and the quarter is declared complete through its end (local midnight, EDT by then).
    await _post_events(
        stack, p, [_cost(p, 3, "2500000.00"), _complete_through(p, "2026-04-01T00:00:00-04:00")]
    )
    await eventually(lambda: _statement(stack, p, contract["id"]), lambda s: s["data_complete"])
    final = await _finalize(stack, p, contract["id"])
    assert final.status_code == 201, final.text
    # E = 4,000,000 + 3,000,000 + 2,500,000 = 9,500,000; S = 10,000,000 − E = 500,000 (5 % of B, no
    # minimum savings rate); shared = 0.5 × quality 1 × 500,000 = 250,000; the cap (10 % of B =
    # 1,000,000) does not bind.
    assert final.json()["total"] == "250000.00" and final.json()["data_complete"] is True

    # Replacing the final period's inputs with an incomplete set books nothing: finalize would refuse it.
    replaced = await stack.client.put(inputs, json={"quality": "1"}, headers=p.admin)
    assert replaced.status_code == 200, replaced.text
    after = await _statement(stack, p, contract["id"])
    assert after["status"] == "final" and after["adjustments"] == []


async def test_the_vendor_sees_the_feeds_its_contracts_use_and_kpi_values_say_if_complete(
    stack: GatewayStack,
) -> None:
    p = await _parties(stack)
    contract = _contract(p, id=f"{p.health}-feeds")
    assert (await stack.client.post("/v1/contracts", json=contract, headers=p.admin)).status_code == 201
    await _post_events(stack, p, [_cost(p, 1, "100.00"), _complete_through(p, "2026-02-01T00:00:00-05:00")])

    async def feeds(headers: dict[str, str], **params: str) -> dict[str, Any]:
        got = await stack.client.get("/v1/feeds", params=params, headers=headers)
        assert got.status_code == 200, got.text
        return dict(got.json())

    mine = await eventually(lambda: feeds(p.admin), lambda f: any(i["complete_through"] for i in f["items"]))
    by_feed = {i["feed"]: i for i in mine["items"]}
    assert set(by_feed) == {
        "adt",
        "medication",
        "safety",
        "quality",
        "systems",
        "claims",
        "payments",
        "ar",
        "cost",
    }
    cost = by_feed["cost"]
    assert cost["complete_through"] == "2026-02-01T05:00:00+00:00"
    assert cost["declared_by"] == {"source": "erp", "id": "cost-complete-2026-02-01T00:00:00-05:00"}
    assert cost["newest_event_time"] == "2026-01-15T17:00:00+00:00"
    # The vendor's contract reads cost_total only: it sees the cost feed of the contract's facility.
    seen = await feeds(p.billing, tenant=p.health)
    assert [(i["facility"], i["feed"], i["kpis"]) for i in seen["items"]] == [
        (p.facility, "cost", ["cost_total"])
    ]
    # ... and no KPI its contracts do not use, even on that facility.
    other = await stack.client.get(
        "/v1/kpis/cost_to_collect/values",
        params={"tenant": p.health, "from": "2026-01-01", "to": "2026-02-01"},
        headers=p.billing,
    )
    assert other.status_code == 404

    values = await stack.client.get(
        "/v1/kpis/cost_total/values",
        params={
            "from": "2026-01-01",
            "to": "2026-04-01",
            "granularity": "month",
            "dimension": "total_cost_of_care",
        },
        headers=p.admin,
    )
    months = [(v["value"], v["complete"]) for v in values.json()["values"]]
    # January: 100.00 and declared; February: no event, declared through its start only; March: nothing.
    assert months == [("100.00", True), (None, False), (None, False)]
    # The CLI shows the same, as a data engineer reads it (a wide terminal: nothing is cut).
    shown = await asyncio.to_thread(
        CliRunner().invoke,
        app,
        ["feeds", "show"],
        env={"VR_URL": stack.url, "VR_API_KEY": p.admin["Authorization"][7:], "COLUMNS": "250"},
    )
    assert shown.exit_code == 0, shown.output
    cost_row = next(row for row in shown.output.splitlines() if f"{p.facility} │ cost " in row)
    assert "2026-02-01T05:00:00+00:00" in cost_row and "erp/cost-complete" in cost_row
    assert shown.output.count("never declared") == 8  # every feed but cost
    catalogue = (await stack.client.get("/v1/kpis", headers=p.admin)).json()["items"]
    assert {k["kpi"]: k["feeds"] for k in catalogue}["ade_per_1000_patient_days"] == ["adt", "safety"]


async def test_a_platform_admin_contract_follows_the_health_systems_rules(stack: GatewayStack) -> None:
    p = await _parties(stack)

    async def refused_at(document: dict[str, Any]) -> set[str]:
        answer = await stack.client.post("/v1/contracts", json=document, headers=stack.admin())
        assert answer.status_code == 422, answer.text
        return {e["path"] for e in answer.json()["errors"]}

    # A UTC contract for a New York health system would put February's first hours in January.
    assert await refused_at(_contract(p, id=f"{p.health}-utc", timezone="UTC")) == {"$.timezone"}
    assert await refused_at(_contract(p, id=f"{p.health}-fac", facilities=["elsewhere"])) == {
        "$.facilities[0]"
    }
    assert await refused_at(_contract(p, id=f"{p.health}-nohs", health_system="no-such-health")) == {
        "$.health_system"
    }
    made = await stack.client.post(
        "/v1/contracts", json=_contract(p, id=f"{p.health}-ok"), headers=stack.admin()
    )
    assert made.status_code == 201, made.text
