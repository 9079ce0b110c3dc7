"""A billing team generates a client from the one OpenAPI document and books from typed fields
(docs/api.md): `openapi-python-client` — the generator such a team would use, not our own code —
writes a package from the gateway's `/openapi.json`, which compiles, and whose `getSettlement` reads a
statement's `total` as a typed field."""

from __future__ import annotations

import asyncio
import compileall
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.e2e.test_cli_billing import _contract
from tests.integration.gateway.conftest import GatewayStack
from tests.integration.gateway.test_gateway import bearer, key, tenant

# Hospitals' formats are bodies a billing client sends as bytes; the generator takes them once told
# what they are (its documented `content_type_overrides`).
GENERATOR_CONFIG = {
    "content_type_overrides": {
        "x-application/hl7-v2+er7": "application/octet-stream",
        "application/hl7-v2": "application/octet-stream",
        "text/plain": "application/octet-stream",
        "application/fhir+ndjson": "application/octet-stream",
        "application/fhir+json": "application/json",
    }
}


async def _generate(document: dict[str, Any], where: Path) -> Path:
    spec, config = where / "openapi.json", where / "generator.json"
    spec.write_text(json.dumps(document))
    config.write_text(json.dumps(GENERATOR_CONFIG))
    generated = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--path",
            str(spec),
            "--meta",
            "none",
            "--output-path",
            str(where / "vr_client"),
            "--config",
            str(config),
            "--fail-on-warning",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        # The generator formats what it writes with ruff, from the environment's own scripts.
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    return where / "vr_client"


async def test_a_generated_client_compiles_and_reads_a_statement_total_as_a_typed_field(
    stack: GatewayStack, tmp_path: Path
) -> None:
    document = (await stack.client.get("/openapi.json")).json()
    package = await _generate(document, tmp_path)
    assert compileall.compile_dir(package, quiet=1)

    health, vendor = await tenant(stack, facilities=("main",)), await tenant(stack, kind="vendor")
    admin, billing = await key(stack, health, "tenant_admin"), await key(stack, vendor, "billing")
    contract = _contract(f"gen-{health}", health, vendor)
    assert (await stack.client.post("/v1/contracts", json=contract, headers=bearer(admin))).status_code == 201
    inputs = {"benchmark": "1000000", "expenditure": "900000"}
    put = await stack.client.put(
        f"/v1/contracts/{contract['id']}/periods/2025-Q1/inputs", json=inputs, headers=bearer(admin)
    )
    assert put.status_code == 200, put.text

    sys.path.insert(0, str(tmp_path))
    try:
        client_module = importlib.import_module("vr_client")
        get_settlement = importlib.import_module("vr_client.api.settlements.get_settlement")
        statement_model = importlib.import_module("vr_client.models.statement").Statement
        client = client_module.AuthenticatedClient(base_url=stack.url, token=billing)
        async with client:
            statement = await get_settlement.asyncio(contract["id"], "2025-Q1", client=client)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == "vr_client" or m.startswith("vr_client.")]:
            del sys.modules[name]

    assert isinstance(statement, statement_model)
    # 1,000,000 − 900,000 = 100,000 saved (10 % ≥ the 2 % minimum); half is shared: 50,000.00.
    assert statement.total == "50000.00" and statement.currency == "USD"
    assert statement.lines[0].term_id == "savings" and statement.lines[0].amount == "50000.00"
    assert [step.name for step in statement.lines[0].steps][-1] == "amount"
