"""A vendor reads only what its contracts use — on every path: KPI values by dimension, feeds, what-if
simulations — and settlement reads KPIs as itself, scoped to the contract it computes
(docs/security.md)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.integration.gateway.conftest import GatewayStack
from tests.integration.gateway.test_gateway import bearer, key, tenant
from tests.support.identity import SETTLEMENT_PRIVATE_KEY, token
from vr_shared.identity import HEADER, Identity, IdentitySigner, audience, issuer
from vr_shared.roles import Role


async def _parties(stack: GatewayStack) -> tuple[str, str, str, dict[str, str], dict[str, str]]:
    """A health system with two facilities; a vendor whose one contract uses one cost category on the
    first facility in 2026."""
    shared, other = f"f-{uuid.uuid4().hex[:8]}", f"f-{uuid.uuid4().hex[:8]}"
    health, vendor = await tenant(stack, facilities=(shared, other)), await tenant(stack, kind="vendor")
    admin = bearer(await key(stack, health, "tenant_admin"))
    contract = _contract(health, vendor, shared, "drugs")
    created = await stack.client.post("/v1/contracts", json=contract, headers=admin)
    assert created.status_code == 201, created.text
    return health, vendor, shared, admin, bearer(await key(stack, vendor, "ops"))


def _contract(health: str, vendor: str, facility: str, category: str, **changes: Any) -> dict[str, Any]:
    return {
        "id": f"{health}-{uuid.uuid4().hex[:6]}",
        "name": "Drug spend",
        "health_system": health,
        "vendor": vendor,
        "facilities": [facility],
        "currency": "USD",
        "timezone": "America/New_York",
        "start": "2026-01-01",
        "end": "2026-12-31",
        "period": "quarter",
        "runout_days": 0,
        "terms": [
            {
                "id": "savings",
                "kind": "shared_savings",
                "expenditure": {"kpi": "cost_total", "dimension": {"category": category}},
                "benchmark": {"input": "benchmark"},
                "savings_rate": "0.5",
            }
        ],
        **changes,
    }


async def _values(stack: GatewayStack, who: dict[str, str], kpi: str, **params: str) -> httpx.Response:
    query = {"from": "2026-01-01", "to": "2026-02-01", **params}
    return await stack.client.get(f"/v1/kpis/{kpi}/values", params=query, headers=who)


async def test_a_vendor_reads_only_the_dimension_values_its_contracts_use(stack: GatewayStack) -> None:
    health, _, shared, _, vendor = await _parties(stack)
    granted = await _values(stack, vendor, "cost_total", tenant=health, dimension="category:drugs")
    assert granted.status_code == 200, granted.text
    assert granted.json()["dimension"] == {"category": "drugs"}
    assert (await _values(stack, vendor, "cost_total", tenant=health, dimension="drugs")).status_code == 200
    # Another category, the total over every category, another KPI: as if they did not exist.
    for params in ({"dimension": "category:total_cost_of_care"}, {}, {"dimension": "category:labor"}):
        refused = await _values(stack, vendor, "cost_total", tenant=health, **params)
        assert refused.status_code == 404, (params, refused.text)
    assert (await _values(stack, vendor, "readmission_rate_30d", tenant=health)).status_code == 404
    readings = await stack.client.post(
        "/v1/kpis/readings",
        params={"tenant": health},
        json={
            "readings": [
                {"kpi": "cost_total", "from": "2026-01-01", "to": "2026-02-01", "dimension": "labor"}
            ]
        },
        headers=vendor,
    )
    assert readings.status_code == 404, readings.text
    feeds = await stack.client.get("/v1/feeds", params={"tenant": health}, headers=vendor)
    assert [(i["facility"], i["feed"]) for i in feeds.json()["items"]] == [(shared, "cost")]


async def test_a_vendor_simulates_only_what_a_shared_contract_shows_it(stack: GatewayStack) -> None:
    health, vendor_id, shared, _, vendor = await _parties(stack)

    async def simulate(contract: dict[str, Any], periods: list[str]) -> httpx.Response:
        body = {
            "contract": contract,
            "periods": periods,
            "inputs": {p: {"benchmark": "100.00"} for p in periods},
        }
        return await stack.client.post("/v1/contracts:simulate", json=body, headers=vendor)

    allowed = await simulate(_contract(health, vendor_id, shared, "drugs"), ["2026-Q1", "2026-Q2"])
    assert allowed.status_code == 200, allowed.text
    assert [s["status"] for s in allowed.json()["statements"]] == ["simulated", "simulated"]
    # The finding: a made-up contract with a readmission term over the shared facility.
    readmissions = _contract(health, vendor_id, shared, "drugs")
    readmissions["terms"] = [
        {
            "id": "readmissions",
            "kind": "kpi_incentive",
            "kpi": "readmission_rate_30d",
            "direction": "lower_is_better",
            "baseline": "0.15",
            "target": "0.10",
            "max_reward": "1000.00",
        }
    ]
    refused = {
        "another KPI": await simulate(readmissions, ["2026-Q1"]),
        "another category": await simulate(_contract(health, vendor_id, shared, "labor"), ["2026-Q1"]),
        "a period no contract covers": await simulate(
            _contract(health, vendor_id, shared, "drugs", start="2025-01-01", end="2026-12-31"), ["2025-Q4"]
        ),
    }
    for case, answer in refused.items():
        assert answer.status_code in (403, 422), (case, answer.text)
        assert "numerator" not in answer.text and "statements" not in answer.text, case
    assert refused["another KPI"].status_code == 403
    assert "readmission_rate_30d" in refused["another KPI"].json()["detail"]


async def test_simulations_are_bounded(stack: GatewayStack) -> None:
    health, vendor_id, shared, admin, _ = await _parties(stack)
    many_periods = [f"20{26 + i // 4}-Q{i % 4 + 1}" for i in range(41)]
    long = _contract(health, vendor_id, shared, "drugs", end="2036-12-31")
    answer = await stack.client.post(
        "/v1/contracts:simulate", json={"contract": long, "periods": many_periods}, headers=admin
    )
    assert answer.status_code == 422 and answer.json()["errors"][0]["path"] == "$.periods", answer.text
    many_terms = _contract(health, vendor_id, shared, "drugs")
    many_terms["terms"] = [{**many_terms["terms"][0], "id": f"t{i}"} for i in range(51)]
    answer = await stack.client.post(
        "/v1/contracts:simulate", json={"contract": many_terms, "periods": ["2026-Q1"]}, headers=admin
    )
    assert answer.status_code == 422 and answer.json()["errors"][0]["path"] == "$.contract.terms", answer.text


async def test_settlement_reads_kpis_as_itself_and_only_what_it_was_granted(services: dict[str, str]) -> None:
    """Its token (its own key, role `service`) names the contract's KPI values: the engine answers
    those and refuses any other; a token of role `service` from the gateway's key is refused."""
    signer = IdentitySigner(SETTLEMENT_PRIVATE_KEY, issuer=issuer("settlement"))
    scoped = Identity(
        tenant="mission-health",
        role=Role.SERVICE,
        key_id="settlement",
        facilities=frozenset({"asheville-main"}),
        kpis=frozenset({"cost_total[category=drugs]"}),
    )
    as_settlement = {HEADER: signer.sign(scoped, audience("kpi-engine"))}

    def readings(dimension: str) -> dict[str, Any]:
        return {
            "readings": [
                {"kpi": "cost_total", "from": "2026-01-01", "to": "2026-02-01", "dimension": dimension}
            ]
        }

    async with httpx.AsyncClient(base_url=services["kpi-engine"]) as engine:
        granted = await engine.post("/v1/kpis/readings", json=readings("drugs"), headers=as_settlement)
        assert granted.status_code == 200, granted.text
        other = await engine.post("/v1/kpis/readings", json=readings("labor"), headers=as_settlement)
        assert other.status_code == 404, other.text
        # Settlement's identity reads readings only, not the KPI API a user reads.
        values = await engine.get(
            "/v1/kpis/cost_total/values",
            params={"from": "2026-01-01", "to": "2026-02-01", "dimension": "drugs"},
            headers=as_settlement,
        )
        assert values.status_code == 403, values.text
        forged = {HEADER: token(role=Role.SERVICE, service="kpi-engine")}
        assert (
            await engine.post("/v1/kpis/readings", json=readings("drugs"), headers=forged)
        ).status_code == 401
    async with httpx.AsyncClient(base_url=services["ingest"]) as ingest:
        # No other service trusts settlement's key.
        refused = await ingest.post(
            "/v1/events", json=[], headers={HEADER: signer.sign(scoped, audience("ingest"))}
        )
        assert refused.status_code == 401
