"""What the dashboards and alert rules ask Prometheus, and a real Prometheus (+ promtool) to ask it.

Prometheus and promtool come from Debian's `prometheus` package, which `make test` unpacks into
`.tools/prometheus` (nothing is installed system-wide); a `prometheus` on PATH is used otherwise.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from devstack.ports import free_port
from devstack.prometheus import LocalPrometheus, prometheus_binary

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
SERIES = re.compile(r"\bvr_[a-z0-9_]+")
_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>[a-zA-Z_]+)\)$")
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


@dataclass(frozen=True)
class Expression:
    where: str  # "kpis.json: <panel title>" or the alert's name
    promql: str  # as written (Grafana variables included)
    label: str | None = None  # a template variable's label_values(…, label): the label it lists


def dashboard_expressions() -> list[Expression]:
    found = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        document = json.loads(path.read_text())
        for panel in document["panels"]:
            for target in panel["targets"]:
                found.append(Expression(f"{path.name}: {panel['title']}", target["expr"]))
        for variable in document.get("templating", {}).get("list", []):
            query = variable["query"]["query"]
            listed = _LABEL_VALUES.match(query)
            assert listed, f"{path.name}: ${variable['name']} is not label_values(…): {query}"
            found.append(Expression(f"{path.name}: ${variable['name']}", listed["selector"], listed["label"]))
    return found


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def alert_expressions() -> list[Expression]:
    return [Expression(rule["alert"], rule["expr"]) for rule in alert_rules()]


def as_promql(expression: Expression, values: dict[str, str] | None = None) -> str:
    """Grafana's template variables replaced (by `values`, else by a regex matching anything, which is
    what a dashboard's "All" sends), so Prometheus can parse and run the expression."""
    chosen = values or {}
    return _VARIABLE.sub(lambda m: chosen.get(m[1] or m[2], ".+"), expression.promql)


def tool(name: str) -> str:
    found = prometheus_binary(ROOT, name)
    if found is None:
        pytest.fail(
            f"{name} not found: `make test` unpacks Debian's prometheus into .tools/ (make prometheus)"
        )
    return str(found)


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("promtool"), *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


class Prometheus:
    """The HTTP API of a running Prometheus; answers are the `data` of a successful response."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._client = httpx.Client(base_url=url, timeout=30)

    def get(self, path: str, **params: Any) -> Any:
        response = self._client.get(path, params=params)
        body = response.json()
        assert response.status_code == 200 and body["status"] == "success", f"{path} {params}: {body}"
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        data = self.get("/api/v1/query", query=promql)
        assert data["resultType"] == "vector", data
        return list(data["result"])

    def query_range(self, promql: str, start: float, end: float, step: float = 1) -> list[dict[str, Any]]:
        return list(self.get("/api/v1/query_range", query=promql, start=start, end=end, step=step)["result"])

    def close(self) -> None:
        self._client.close()


@contextlib.contextmanager
def running_prometheus(
    workdir: Path, targets: dict[str, list[str]], *, interval: str = "1s"
) -> Iterator[Prometheus]:
    """A real Prometheus on loopback scraping `targets` (job → base URLs) every `interval`, with the
    repository's alert rules loaded and evaluated at the same interval (as `make up` runs it)."""
    prometheus = LocalPrometheus(
        Path(tool("prometheus")), workdir, free_port(), targets, rules=ALERTS, interval=interval
    )
    checked = promtool("check", "config", prometheus.write_config())
    assert checked.returncode == 0, checked.stdout + checked.stderr
    prometheus.start()
    client = Prometheus(prometheus.url)
    try:
        yield client
    finally:
        client.close()
        prometheus.stop()
