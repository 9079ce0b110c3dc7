"""No default secret works anywhere: services refuse to start on a missing, short, low-entropy or
placeholder secret; compose cannot be rendered without the operator's values and publishes only the
gateway; the Kubernetes manifest carries no secret and lets only the gateway reach the services; the
bootstrap admin key can be retired (docs/security.md)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gateway.entrypoints.app import create_app
from tests.integration.gateway.conftest import drop_schemas, gateway_settings
from tests.support.identity import (
    GATEWAY_PRIVATE_KEY,
    GATEWAY_PUBLIC_KEY,
    PSEUDONYM_KEY,
    SETTLEMENT_PRIVATE_KEY,
    SETTLEMENT_PUBLIC_KEY,
)
from tests.support.infrastructure import Infrastructure
from tests.support.servers import serving
from vr_shared.secrets import PUBLISHED_SECRETS

ROOT = Path(__file__).resolve().parents[2]
# What each service needs to start, all valid: each test case spoils one of them.
VALID: dict[str, dict[str, str]] = {
    "gateway": {"VR_IDENTITY_PRIVATE_KEY": GATEWAY_PRIVATE_KEY},
    "ingest": {"VR_IDENTITY_PUBLIC_KEY": GATEWAY_PUBLIC_KEY, "VR_PSEUDONYM_KEY": PSEUDONYM_KEY},
    "kpi_engine": {
        "VR_IDENTITY_PUBLIC_KEY": GATEWAY_PUBLIC_KEY,
        "VR_SETTLEMENT_PUBLIC_KEY": SETTLEMENT_PUBLIC_KEY,
    },
    "settlement": {
        "VR_IDENTITY_PUBLIC_KEY": GATEWAY_PUBLIC_KEY,
        "VR_SERVICE_PRIVATE_KEY": SETTLEMENT_PRIVATE_KEY,
    },
}
PLACEHOLDERS = [
    "CHANGE-ME-at-least-32-characters-random",  # the old Kubernetes placeholder: 39 characters, refused
    "vrk_CHANGE-ME-at-least-32-characters-random",
    "change-me",
    *sorted(PUBLISHED_SECRETS),  # every default compose used to carry
    "a" * 48,  # long, no entropy
    "abcabcabcabcabcabcabcabcabcabcabcabc",
    "short-but-random-Zq3",
]
CASES = [
    *[("ingest", "VR_PSEUDONYM_KEY", value) for value in PLACEHOLDERS],
    *[("gateway", "VR_BOOTSTRAP_ADMIN_KEY", value) for value in PLACEHOLDERS],
    *[(module, variable, PLACEHOLDERS[0]) for module, needed in VALID.items() for variable in needed],
    *[(module, variable, None) for module, needed in VALID.items() for variable in needed],  # missing
]


async def _start(module: str, environment: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        env=environment,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    except TimeoutError:
        process.kill()
        await process.wait()
        return -1, "still running: it started"
    return process.returncode or 0, stderr.decode()


async def test_services_refuse_to_start_with_a_missing_weak_or_placeholder_secret() -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VR_") and k != "DATABASE_URL"}
    # Ports nobody listens on: a service that wrongly started would fail later, not exit 2 at once.
    clean.update({"VR_HTTP_PORT": "1", "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"})
    limit = asyncio.Semaphore(4)

    async def case(module: str, variable: str, value: str | None) -> tuple[str, str, str | None, int, str]:
        environment = {**clean, **VALID[module]}
        if value is None:
            environment.pop(variable)
        else:
            environment[variable] = value
        async with limit:
            code, stderr = await _start(module, environment)
        return module, variable, value, code, stderr

    results = await asyncio.gather(*(case(*c) for c in CASES))
    for module, variable, value, code, stderr in results:
        assert code == 2, (module, variable, value, stderr[-500:])
        assert f"refusing to start: {variable}" in stderr, (module, variable, stderr[-500:])
        assert value is None or len(value) < 8 or value not in stderr  # the value itself is never echoed


def _interpolate(text: str, environment: dict[str, str]) -> str:
    """Compose's interpolation of `${VAR}`, `${VAR:-default}` and `${VAR:?error}` (the forms the file
    uses): an unset required variable fails, as `docker compose config` does."""

    def one(match: re.Match[str]) -> str:
        name, operator, argument = match["name"], match["op"], match["arg"] or ""
        value = environment.get(name, "")
        if operator == ":?" and not value:
            raise ValueError(f"required variable {name} is missing a value: {argument}")
        if operator == ":-" and not value:
            return argument
        return value

    return re.sub(r"\$\{(?P<name>[A-Z0-9_]+)(?:(?P<op>:[?-])(?P<arg>[^}]*))?\}", one, text)


SECRET_VARIABLES = [
    "POSTGRES_PASSWORD",
    "VR_IDENTITY_PRIVATE_KEY",
    "VR_IDENTITY_PUBLIC_KEY",
    "VR_SETTLEMENT_PUBLIC_KEY",
    "VR_SERVICE_PRIVATE_KEY",
    "VR_PSEUDONYM_KEY",
    "VR_DB_PASSWORD_GATEWAY",
    "VR_DB_PASSWORD_KPI_ENGINE",
    "VR_DB_PASSWORD_SETTLEMENT",
    "GF_SECURITY_ADMIN_PASSWORD",
]


def test_compose_cannot_be_rendered_without_the_operators_secrets(tmp_path: Path) -> None:
    compose_file = ROOT / "docker-compose.yml"
    docker = shutil.which("docker")
    clean = {k: v for k, v in os.environ.items() if k not in SECRET_VARIABLES}
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        rendered = subprocess.run(
            [docker, "compose", "-f", str(compose_file), "config"],
            env=clean,
            capture_output=True,
            cwd=tmp_path,
        )
        assert rendered.returncode != 0 and b"required variable" in rendered.stderr
    text = compose_file.read_text()
    for variable in SECRET_VARIABLES:  # each one alone missing: refused
        given = {v: "x" for v in SECRET_VARIABLES if v != variable}
        with pytest.raises(ValueError, match=f"required variable {variable} "):
            _interpolate(text, given)
    rendered = yaml.safe_load(_interpolate(text, {v: f"value-of-{v}" for v in SECRET_VARIABLES}))
    values = [str(v) for s in rendered["services"].values() for v in (s.get("environment") or {}).values()]
    assert not any(secret in value for value in values for secret in PUBLISHED_SECRETS)
    assert "VR_IDENTITY_SECRET" not in text  # the shared HMAC secret is gone


def test_compose_publishes_only_the_gateway_and_grafana_asks_for_a_login() -> None:
    services: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    published = {name: s["ports"] for name, s in services.items() if s.get("ports")}
    assert published.pop("gateway") == ["8000:8000"]
    assert published == {"prometheus": ["127.0.0.1:9090:9090"], "grafana": ["127.0.0.1:3000:3000"]}
    assert services["grafana"]["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "false"


def test_the_kubernetes_manifest_holds_no_secret_and_only_the_gateway_reaches_the_services() -> None:
    text = (ROOT / "deploy" / "k8s" / "value-realization.yaml").read_text()
    documents = [d for d in yaml.safe_load_all(text) if d]
    assert not [d for d in documents if d["kind"] == "Secret"]
    assert "CHANGE-ME" not in text and "change-me" not in text.lower()
    policies = {d["metadata"]["name"]: d["spec"] for d in documents if d["kind"] == "NetworkPolicy"}
    deny = policies["vr-default-deny"]
    assert deny["podSelector"] == {"matchLabels": {"app.kubernetes.io/part-of": "value-realization"}}
    assert "ingress" not in deny and deny["policyTypes"] == ["Ingress"]
    # Who may reach each service's API port, by the policies that admit that port.
    reachers: dict[str, set[str]] = {}
    for spec in policies.values():
        selected = spec["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name")
        names = (
            [selected]
            if selected
            else next((e["values"] for e in spec["podSelector"].get("matchExpressions", [])), [])
        )
        for rule in spec.get("ingress", []):
            if {"port": "http"} not in rule.get("ports", []):
                continue
            sources = {
                p["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for p in rule.get("from", [])
            }
            for name in names:
                reachers.setdefault(name, set()).update(sources or {"anyone"})
    assert reachers == {
        "gateway": {"anyone"},
        "ingest": {"gateway"},
        "settlement": {"gateway"},
        "kpi-engine": {"gateway", "settlement"},
    }
    metrics = policies["vr-metrics-from-prometheus"]["ingress"][0]
    assert metrics["ports"] == [{"port": "metrics"}]
    for document in documents:
        if document["kind"] == "Deployment":
            container = document["spec"]["template"]["spec"]["containers"][0]
            assert {"secretRef": {"name": f"vr-{document['metadata']['name']}"}} in container["envFrom"]
            assert not [e for e in container.get("env", []) if "valueFrom" in e]


async def test_the_bootstrap_admin_key_can_be_retired(
    infrastructure: Infrastructure, services: dict[str, str]
) -> None:
    first, second = "vrk_" + os.urandom(24).hex(), "vrk_" + os.urandom(24).hex()
    settings = gateway_settings(infrastructure, services, bootstrap_admin_key=first)

    async def status_with(key: str, bootstrap: str | None) -> int:
        restarted = settings.model_copy(update={"bootstrap_admin_key": None})
        if bootstrap is not None:
            restarted = gateway_settings(
                infrastructure, services, db_schema=settings.db_schema, bootstrap_admin_key=bootstrap
            )
        async with serving(create_app(restarted)) as url, httpx.AsyncClient(base_url=url) as client:
            return (await client.get("/v1/api-keys", headers={"Authorization": f"Bearer {key}"})).status_code

    async with serving(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        admin = {"Authorization": f"Bearer {first}"}
        assert (await client.get("/v1/api-keys", headers=admin)).status_code == 200
        revoked = await client.delete("/v1/api-keys/key_bootstrap_admin", headers=admin)
        assert revoked.status_code == 200, revoked.text
    # Revoked sticks across a restart with the same value; a new value is a new key; no value retires it.
    assert await status_with(first, first) == 401
    assert await status_with(second, second) == 200
    assert await status_with(second, None) == 401
    # A value once revoked never works again, whatever the variable says: a new key needs a new value.
    assert await status_with(second, second) == 401
    await drop_schemas(infrastructure, settings.db_schema)
