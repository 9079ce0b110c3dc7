"""Contracts through the API: validation errors with paths, versions, inputs, access, audit,
what-if, and statements that refuse to be finalized on missing data."""

from __future__ import annotations

import asyncio
import copy
import csv
import io
from datetime import datetime
from decimal import Decimal
from typing import Any

from settlement.domain.contract import parse_contract
from settlement.domain.periods import parse_period
from settlement.domain.sources import Values
from settlement.domain.statement import canonical_hash, compute_line, statement
from settlement.handlers import readings_of
from tests.integration.settlement.conftest import SettlementStack, as_party
from tests.support.waiting import exposed_metrics, metric_value

TENANT, VENDOR = "life-health", "life-vendor"
ADMIN = as_party(TENANT, facilities=("life-main", "life-west"))
VENDOR_ADMIN = as_party(VENDOR, vendor=True)
VENDOR_BILLING = as_party(VENDOR, role="billing", vendor=True)
OPS = as_party(TENANT, role="ops", facilities=("life-main",))
STRANGER = as_party("someone-else", facilities=("elsewhere",))
PIPELINE = as_party(TENANT, role="pipeline", facilities=("life-main",))


def document(contract_id: str, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": contract_id,
        "name": "Value partnership",
        "health_system": TENANT,
        "vendor": VENDOR,
        "facilities": ["life-main"],
        "currency": "USD",
        "timezone": "UTC",
        "start": "2025-01-01",
        "end": "2027-12-31",
        "period": "quarter",
        "runout_days": 60,
        "fees": {"monthly_fee": "50000.00"},
        "terms": [
            {
                "id": "savings",
                "kind": "shared_savings",
                "expenditure": {"input": "expenditure"},
                "benchmark": {"input": "benchmark"},
                "min_savings_rate": "0.02",
                "savings_rate": "0.50",
            }
        ],
        "caps": {"max_reward": "100000.00"},
    }
    base.update(changes)
    return base


async def create(stack: SettlementStack, body: dict[str, Any]) -> None:
    response = await stack.settlement.post("/v1/contracts", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text


async def test_invalid_contract_answers_422_naming_each_json_path(stack: SettlementStack) -> None:
    body = document("life-bad")
    body["terms"][0]["cap_order"] = "rate_than_cap"
    body["terms"].append({"id": "x", "kind": "bonus"})
    body["facilities"] = ["life-main", "not-ours"]
    response = await stack.settlement.post("/v1/contracts", json=body, headers=ADMIN)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    paths = {e["path"] for e in response.json()["errors"]}
    assert paths == {"$.terms[0].cap_order", "$.terms[1].kind"}
    # Shape first; once the shape is right, facilities are checked against the health system's.
    body["terms"] = body["terms"][:1]
    body["terms"][0]["cap_order"] = "rate_then_cap"
    response = await stack.settlement.post("/v1/contracts", json=body, headers=ADMIN)
    assert [e["path"] for e in response.json()["errors"]] == ["$.facilities[1]"]
    body["facilities"], body["timezone"] = ["life-main"], "Europe/Paris"  # not the health system's zone
    response = await stack.settlement.post("/v1/contracts", json=body, headers=ADMIN)
    assert [e["path"] for e in response.json()["errors"]] == ["$.timezone"]


async def test_versions_keep_final_statements_and_everything_is_audited(stack: SettlementStack) -> None:
    await create(stack, document("life-versions"))
    path = "/v1/contracts/life-versions"
    inputs = {"benchmark": "10000000", "expenditure": "9500000"}
    assert (
        await stack.settlement.put(f"{path}/periods/2025-Q1/inputs", json=inputs, headers=ADMIN)
    ).status_code == 200
    final = await stack.settlement.post(f"{path}/settlements/2025-Q1/finalize", headers=VENDOR_BILLING)
    assert final.status_code == 201, final.text
    assert final.json()["total"] == "100000.00"  # 250,000 shared, contract cap 100,000
    assert final.json()["lines"][-1]["term_id"] == "contract_caps"

    changed = document("life-versions", caps=None)
    changed["terms"][0]["savings_rate"] = "0.60"
    put = await stack.settlement.put(path, json=changed, headers=ADMIN)
    assert put.status_code == 200 and put.json()["version"] == 2

    kept = (await stack.settlement.get(f"{path}/settlements/2025-Q1", headers=OPS)).json()
    assert (kept["status"], kept["contract_version"], kept["total"]) == ("final", 1, "100000.00")
    q2 = await stack.settlement.put(f"{path}/periods/2025-Q2/inputs", json=inputs, headers=ADMIN)
    assert q2.status_code == 200
    current = (await stack.settlement.get(f"{path}/settlements/2025-Q2", headers=OPS)).json()
    assert (current["contract_version"], current["total"]) == (2, "300000.00")
    v1 = (await stack.settlement.get(path, params={"version": 1}, headers=VENDOR_ADMIN)).json()
    assert v1["terms"][0]["savings_rate"] == "0.50" and v1["version"] == 1

    trail = (await stack.settlement.get(f"{path}/audit", headers=VENDOR_BILLING)).json()["items"]
    assert [item["action"] for item in trail] == [
        "contract.created",
        "inputs.put",
        "settlement.finalized",
        "contract.updated",
        "inputs.put",
    ]
    assert trail[3]["previous"]["terms"][0]["savings_rate"] == "0.50"
    assert trail[3]["current"]["terms"][0]["savings_rate"] == "0.60"
    assert trail[0]["by"] == {"tenant": TENANT, "role": "tenant_admin", "key_id": "key-test"}


async def test_final_statement_reproduces_from_its_basis(stack: SettlementStack) -> None:
    await create(stack, document("life-reproduce"))
    path = "/v1/contracts/life-reproduce"
    inputs = {"benchmark": "8000000", "expenditure": "7700000"}
    await stack.settlement.put(f"{path}/periods/2025-Q3/inputs", json=inputs, headers=ADMIN)
    final = (await stack.settlement.post(f"{path}/settlements/2025-Q3/finalize", headers=ADMIN)).json()

    basis = final["basis"]
    contract = parse_contract(basis["contract"])
    period = parse_period(contract.period, "2025-Q3", contract.start, contract.end)
    values = Values({k: Decimal(v) for k, v in basis["inputs"].items()}, readings_of(basis))
    lines = [compute_line(term, contract, period, values) for term in contract.terms]
    rebuilt = statement(
        contract,
        final["contract_version"],
        period,
        "final",
        lines,
        data_cutoff=datetime.fromisoformat(final["data_cutoff"]),
        computed_at=datetime.fromisoformat(final["computed_at"]),
    )
    rebuilt["basis"] = basis
    assert canonical_hash(rebuilt) == final["sha256"]


async def test_missing_inputs_give_a_reason_and_block_finalization(stack: SettlementStack) -> None:
    await create(stack, document("life-missing"))
    path = "/v1/contracts/life-missing"
    await stack.settlement.put(f"{path}/periods/2025-Q4/inputs", json={"benchmark": "100"}, headers=ADMIN)
    line = (await stack.settlement.get(f"{path}/settlements/2025-Q4", headers=OPS)).json()["lines"][0]
    assert (line["amount"], line["reason"]) == ("0.00", "missing_input")
    refused = await stack.settlement.post(f"{path}/settlements/2025-Q4/finalize", headers=ADMIN)
    assert refused.status_code == 409
    assert refused.json()["lines"][0]["reason"] == "missing_input"
    bad = await stack.settlement.put(f"{path}/periods/2025-Q4/inputs", json={"benchmark": 100}, headers=ADMIN)
    assert bad.status_code == 422 and bad.json()["errors"][0]["path"] == "$.benchmark"
    unknown = await stack.settlement.get(f"{path}/settlements/2025-13", headers=OPS)
    assert unknown.status_code == 404


async def test_parties_roles_and_strangers(stack: SettlementStack) -> None:
    await create(stack, document("life-access"))
    path = "/v1/contracts/life-access"
    assert (await stack.settlement.get(path, headers=STRANGER)).status_code == 404
    assert (await stack.settlement.get(f"{path}/settlements/2025-Q1", headers=STRANGER)).status_code == 404
    assert (await stack.settlement.get(path, headers=PIPELINE)).status_code == 403
    assert (await stack.settlement.get(path, headers={})).status_code == 401
    assert (
        await stack.settlement.put(path, json=document("life-access"), headers=VENDOR_ADMIN)
    ).status_code == 403
    assert (
        await stack.settlement.post("/v1/contracts", json=document("life-access"), headers=ADMIN)
    ).status_code == 409
    listed = (await stack.settlement.get("/v1/contracts", headers=VENDOR_BILLING)).json()["items"]
    assert "life-access" in {c["id"] for c in listed}
    assert (await stack.settlement.get("/v1/contracts", headers=STRANGER)).json()["items"] == []
    ops_finalize = await stack.settlement.post(f"{path}/settlements/2025-Q1/finalize", headers=OPS)
    assert ops_finalize.status_code == 403


async def test_a_statement_reads_as_csv_for_a_spreadsheet(stack: SettlementStack) -> None:
    await create(stack, document("life-csv"))
    inputs = {"benchmark": "1000000", "expenditure": "900000"}
    put = await stack.settlement.put(
        "/v1/contracts/life-csv/periods/2025-Q1/inputs", json=inputs, headers=ADMIN
    )
    assert put.status_code == 200, put.text
    path = "/v1/contracts/life-csv/settlements/2025-Q1"
    as_json = (await stack.settlement.get(path, headers=ADMIN)).json()
    as_csv = await stack.settlement.get(path, headers={**ADMIN, "Accept": "text/csv"})
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert 'filename="life-csv-2025-Q1.csv"' in as_csv.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [(r["term_id"], r["kind"], r["amount"], r["period"], r["currency"]) for r in rows] == [
        (line["term_id"], line["kind"], line["amount"], "2025-Q1", "USD") for line in as_json["lines"]
    ]
    assert rows[0]["amount"] == "50000.00"  # 100,000 saved, 10 % past the 2 % gate, shared at 50 %


async def test_simulate_computes_without_storing(stack: SettlementStack) -> None:
    draft = document("life-whatif")
    draft["terms"][0]["basis"] = "above_threshold"
    body = {
        "contract": draft,
        "periods": ["2026-Q1", "2026-Q2"],
        "inputs": {"2026-Q1": {"benchmark": "1000000", "expenditure": "900000"}},
    }
    response = await stack.settlement.post("/v1/contracts:simulate", json=body, headers=ADMIN)
    assert response.status_code == 200, response.text
    q1, q2 = response.json()["statements"]
    assert (q1["status"], q1["total"]) == ("simulated", "40000.00")
    assert q2["lines"][0]["reason"] == "missing_input"
    assert (await stack.settlement.get("/v1/contracts/life-whatif", headers=ADMIN)).status_code == 404
    # A what-if sets no contract's gauges: it could name any contract id, another tenant's too.
    assert 'contract="life-whatif"' not in exposed_metrics()
    foreign = copy.deepcopy(body)
    foreign["contract"]["health_system"] = "someone-else"
    refused = await stack.settlement.post("/v1/contracts:simulate", json=foreign, headers=VENDOR_ADMIN)
    assert refused.status_code == 403


async def test_operations_endpoints_and_settlement_metrics(stack: SettlementStack) -> None:
    assert (await stack.settlement.get("/healthz")).status_code == 200
    ready = await stack.settlement.get("/readyz")
    assert ready.status_code == 200, ready.text
    before = exposed_metrics()
    with_kpi = document("life-metrics")
    with_kpi["terms"].append(
        {
            "id": "claims",
            "kind": "kpi_incentive",
            "kpi": "clean_claim_rate",
            "direction": "higher_is_better",
            "baseline": "0.5",
            "target": "0.9",
            "max_reward": "1000.00",
        }
    )
    await create(stack, with_kpi)
    inputs = {"benchmark": "1000000", "expenditure": "900000"}
    await stack.settlement.put(
        "/v1/contracts/life-metrics/periods/2025-Q1/inputs", json=inputs, headers=ADMIN
    )
    await stack.settlement.get("/v1/contracts/life-metrics/settlements/2025-Q1", headers=OPS)
    exposed = exposed_metrics()
    # Past its run-out with no claims data at all: blocked (the savings line alone is 50,000.00).
    amount = 'vr_settlement_amount{contract="life-metrics",currency="USD",period="2025-Q1",status="blocked"}'
    assert f"{amount} 50000.0" in exposed
    assert 'vr_settlement_statement_blocked{contract="life-metrics",period="2025-Q1"} 1.0' in exposed

    def grew(sample: str) -> float:
        return metric_value(exposed, sample) - metric_value(before, sample)

    assert grew("vr_settlement_kpi_read_seconds_count") == 1  # one request for all of a statement's KPIs
    assert grew("vr_settlement_statement_seconds_count") == 1
    assert grew('vr_settlement_statements_computed_total{status="blocked"}') == 1


async def test_concurrent_finalizations_store_one_statement_and_parties_never_change(
    stack: SettlementStack,
) -> None:
    await create(stack, document("life-race"))
    path = "/v1/contracts/life-race"
    inputs = {"benchmark": "2000000", "expenditure": "1900000"}
    await stack.settlement.put(f"{path}/periods/2026-Q1/inputs", json=inputs, headers=ADMIN)
    finalize = f"{path}/settlements/2026-Q1/finalize"
    answers = await asyncio.gather(
        *(
            stack.settlement.post(finalize, headers={**VENDOR_BILLING, "Idempotency-Key": f"k{i}"})
            for i in range(4)
        )
    )
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 201]
    assert len({a.json()["sha256"] for a in answers}) == 1
    trail = (await stack.settlement.get(f"{path}/audit", headers=ADMIN)).json()["items"]
    assert [item["action"] for item in trail].count("settlement.finalized") == 1
    moved = await stack.settlement.put(path, json=document("life-race", vendor="other-vendor"), headers=ADMIN)
    assert moved.status_code == 422 and moved.json()["errors"][0]["path"] == "$.vendor"
