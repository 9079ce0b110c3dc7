"""Dashboards and alert rules use only metrics the services really export (SPEC §8).

Every PromQL expression in every Grafana panel, template variable and alert rule is read, and each
`vr_*` series it names must be a sample of a metric registered by the services' code (a histogram's
`_bucket`/`_sum`/`_count`, a counter's `_total`). A renamed metric fails here, not on a dashboard.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import gateway.metrics
import ingest.metrics
import kpi_engine.metrics
import settlement.metrics
import vr_shared.metrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SERIES = re.compile(r"\bvr_[a-z0-9_]+")
SERVICE_METRICS = (gateway.metrics, ingest.metrics, kpi_engine.metrics, settlement.metrics, vr_shared.metrics)


def exported_series() -> set[str]:
    assert SERVICE_METRICS  # imported for their registrations
    names: set[str] = set()
    for family in REGISTRY.collect():
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        else:
            names.add(family.name)
    return {n for n in names if n.startswith("vr_")}


def dashboard_expressions() -> Iterator[tuple[str, str]]:
    for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json")):
        document = json.loads(path.read_text())
        for panel in document["panels"]:
            for target in panel["targets"]:
                yield f"{path.name}: {panel['title']}", target["expr"]
        for variable in document.get("templating", {}).get("list", []):
            yield f"{path.name}: ${variable['name']}", variable["query"]["query"]


def alert_expressions() -> Iterator[tuple[str, str]]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            yield rule["alert"], rule["expr"]


EXPRESSIONS = [*dashboard_expressions(), *alert_expressions()]


@pytest.mark.parametrize(("where", "expr"), EXPRESSIONS, ids=[w for w, _ in EXPRESSIONS])
def test_every_series_in_dashboards_and_alerts_is_exported(where: str, expr: str) -> None:
    used = set(SERIES.findall(expr))
    assert used, f"{where}: no vr_ metric in {expr!r}"
    assert used <= exported_series(), f"{where}: not exported: {sorted(used - exported_series())}"


def test_there_is_a_dashboard_per_area_and_each_alert_explains_itself() -> None:
    titles = {json.loads(p.read_text())["title"] for p in (DEPLOY / "grafana" / "dashboards").glob("*.json")}
    assert titles == {"Ingest", "Pipeline", "KPIs", "Settlement", "Gateway"}
    rules: dict[str, Any] = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    for rule in rules["groups"][0]["rules"]:
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
    datasources = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    uid = datasources["datasources"][0]["uid"]
    for path in (DEPLOY / "grafana" / "dashboards").glob("*.json"):
        for panel in json.loads(path.read_text())["panels"]:
            assert panel["datasource"]["uid"] == uid, f"{path.name}: {panel['title']}"


def test_prometheus_scrapes_every_service_and_loads_the_rules() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert {job["job_name"] for job in config["scrape_configs"]} == {
        "gateway",
        "ingest",
        "kpi-engine",
        "settlement",
    }
    assert config["rule_files"] == ["alerts.yml"]
