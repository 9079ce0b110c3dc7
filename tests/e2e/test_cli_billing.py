"""The `vr` commands a billing or finance user runs, against the real stack through the gateway:
contracts, a what-if, a statement exported as CSV, finalize retried safely — and a gateway that cannot
be reached is one clear line."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from tests.integration.gateway.conftest import GatewayStack
from tests.integration.gateway.test_gateway import bearer, key, tenant
from vr_cli.main import app


async def _vr(env: dict[str, str], *args: str) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)


def _contract(contract_id: str, health: str, vendor: str) -> dict[str, Any]:
    return {
        "id": contract_id,
        "name": "Savings partnership",
        "health_system": health,
        "vendor": vendor,
        "facilities": ["main"],
        "currency": "USD",
        "timezone": "America/New_York",
        "start": "2025-01-01",
        "end": "2026-12-31",
        "period": "quarter",
        "runout_days": 30,
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
    }


async def test_a_finance_user_manages_contracts_and_statements_from_the_command_line(
    stack: GatewayStack, tmp_path: Path
) -> None:
    health, vendor = await tenant(stack, facilities=("main",)), await tenant(stack, kind="vendor")
    admin = await key(stack, health, "tenant_admin")
    env = {"VR_URL": stack.url, "VR_API_KEY": admin, "COLUMNS": "250"}
    contract_id = f"cli-{uuid.uuid4().hex[:8]}"
    document = tmp_path / "contract.json"
    document.write_text(json.dumps(_contract(contract_id, health, vendor)))

    created = await _vr(env, "contracts", "create", str(document))
    assert created.exit_code == 0 and f"created {contract_id} version 1" in created.output, created.output
    listed = await _vr(env, "contracts", "list", "--output", "json")
    assert [c["id"] for c in json.loads(listed.output)] == [contract_id]
    terms = list(
        csv.DictReader(io.StringIO((await _vr(env, "contracts", "show", contract_id, "-o", "csv")).output))
    )
    assert [(t["term_id"], t["kind"], t["version"]) for t in terms] == [("savings", "shared_savings", "1")]

    inputs = tmp_path / "inputs.json"
    inputs.write_text(json.dumps({"2025-Q1": {"benchmark": "1000000", "expenditure": "900000"}}))
    what_if = await _vr(
        env,
        "contracts",
        "simulate",
        str(document),
        "--period",
        "2025-Q1",
        "--inputs",
        str(inputs),
        "-o",
        "csv",
    )
    assert what_if.exit_code == 0, what_if.output
    simulated = list(csv.DictReader(io.StringIO(what_if.output)))
    assert [(s["period"], s["total"]) for s in simulated] == [("2025-Q1", "50000.00")]

    put = await stack.client.put(
        f"/v1/contracts/{contract_id}/periods/2025-Q1/inputs",
        json={"benchmark": "1000000", "expenditure": "900000"},
        headers=bearer(admin),
    )
    assert put.status_code == 200, put.text
    exported = await _vr(env, "settlements", "export", contract_id, "2025-Q1", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(exported.output)))
    assert [(r["term_id"], r["amount"], r["status"]) for r in rows] == [("savings", "50000.00", "draft")]

    billing = {**env, "VR_API_KEY": await key(stack, vendor, "billing")}
    first = await _vr(
        billing, "settlements", "finalize", contract_id, "2025-Q1", "--idempotency-key", "q1-final"
    )
    again = await _vr(
        billing, "settlements", "finalize", contract_id, "2025-Q1", "--idempotency-key", "q1-final"
    )
    assert first.exit_code == again.exit_code == 0, first.output
    sha = [line for line in first.output.splitlines() if line.startswith("sha256 ")]
    assert sha and sha == [line for line in again.output.splitlines() if line.startswith("sha256 ")]
    as_json = await _vr(
        billing,
        "settlements",
        "finalize",
        contract_id,
        "2025-Q1",
        "--idempotency-key",
        "q1-final",
        "-o",
        "json",
    )
    (final,) = json.loads(as_json.output)
    assert (final["status"], final["total"], f"sha256 {final['sha256']}") == ("final", "50000.00", sha[0])


async def test_a_gateway_that_cannot_be_reached_is_one_clear_line() -> None:
    result = await _vr({"VR_URL": "http://127.0.0.1:9", "VR_API_KEY": "vrk_x"}, "contracts", "list")
    assert result.exit_code == 1
    assert result.output.strip().startswith("cannot reach http://127.0.0.1:9: ConnectError")
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
