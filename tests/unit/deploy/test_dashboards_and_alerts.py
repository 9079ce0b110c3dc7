"""Dashboards and alert rules use only metrics the services really export (docs/operations.md).

Every PromQL expression in every Grafana panel, template variable and alert rule is read, and each
`vr_*` series it names must be a sample of a metric registered by the services' code (a histogram's
`_bucket`/`_sum`/`_count`, a counter's `_total`). A renamed metric fails here, not on a dashboard.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

import gateway.metrics
import ingest.metrics
import kpi_engine.metrics
import settlement.metrics
import vr_shared.metrics
from tests.support.observability import (
    ALERTS,
    DASHBOARDS,
    DEPLOY,
    SERIES,
    Expression,
    alert_expressions,
    alert_rules,
    as_promql,
    dashboard_expressions,
    promtool,
)

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


EXPRESSIONS = [*dashboard_expressions(), *alert_expressions()]


@pytest.mark.parametrize("expression", EXPRESSIONS, ids=[e.where for e in EXPRESSIONS])
def test_every_series_in_dashboards_and_alerts_is_exported(expression: Expression) -> None:
    used = set(SERIES.findall(expression.promql))
    assert used, f"{expression.where}: no vr_ metric in {expression.promql!r}"
    assert used <= exported_series(), f"{expression.where}: not exported: {sorted(used - exported_series())}"


def test_there_is_a_dashboard_per_area_and_each_alert_explains_itself() -> None:
    titles = {json.loads(p.read_text())["title"] for p in DASHBOARDS.glob("*.json")}
    assert titles == {"Ingest", "Pipeline", "KPIs", "Settlement", "Gateway"}
    for rule in alert_rules():
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
    datasources = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    uid = datasources["datasources"][0]["uid"]
    for path in DASHBOARDS.glob("*.json"):
        for panel in json.loads(path.read_text())["panels"]:
            assert panel["datasource"]["uid"] == uid, f"{path.name}: {panel['title']}"


@pytest.mark.promtool
def test_prometheus_config_is_valid_scrapes_every_service_and_loads_the_rules() -> None:
    name = "prometheus.yml"
    config = yaml.safe_load((DEPLOY / "prometheus" / name).read_text())
    assert {job["job_name"] for job in config["scrape_configs"]} == {
        "gateway",
        "ingest",
        "kpi-engine",
        "settlement",
    }
    assert config["rule_files"] == [ALERTS.name]
    checked = promtool("check", "config", DEPLOY / "prometheus" / name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in checked.stdout


@pytest.mark.promtool
def test_alert_rules_pass_promtool_and_their_unit_tests_cover_every_alert() -> None:
    checked = promtool("check", "rules", ALERTS)
    assert checked.returncode == 0 and not checked.stderr, checked.stdout + checked.stderr
    unit_tests = ALERTS.with_name("alerts.test.yml")
    tested = promtool("test", "rules", unit_tests)
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr
    cases = [
        case for group in yaml.safe_load(unit_tests.read_text())["tests"] for case in group["alert_rule_test"]
    ]
    fired = {case["alertname"] for case in cases if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    every_alert = {rule["alert"] for rule in alert_rules()}
    assert fired == every_alert, f"no firing case for {sorted(every_alert - fired)}"
    assert quiet == every_alert, f"no quiet case for {sorted(every_alert - quiet)}"


@pytest.mark.promtool
def test_every_dashboard_expression_parses(tmp_path: Path) -> None:
    """promtool parses each panel's and variable's PromQL (Grafana variables as "All" would send them),
    each as a recording rule: a typo fails here, not as an empty panel."""
    expressions = dashboard_expressions()
    rules = [{"record": f"dashboard:expression_{i}", "expr": as_promql(e)} for i, e in enumerate(expressions)]
    path = tmp_path / "dashboards.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    checked = promtool("check", "rules", path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(expressions)} rules found" in checked.stdout


@pytest.mark.promtool
def test_make_ups_prometheus_scrapes_every_service_with_the_rules(tmp_path: Path) -> None:
    """The configuration `make up` writes for its Prometheus: valid, the same jobs, every port served."""
    from devstack.prometheus import LocalPrometheus
    from devstack.stack import SERVICES

    targets = {spec.name: [f"http://127.0.0.1:{spec.port}"] for spec in SERVICES}
    written = LocalPrometheus(Path("prometheus"), tmp_path, 9090, targets, rules=ALERTS).write_config()
    checked = promtool("check", "config", written)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in checked.stdout
    config = yaml.safe_load(written.read_text())
    shipped = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert sorted(j["job_name"] for j in config["scrape_configs"]) == sorted(
        j["job_name"] for j in shipped["scrape_configs"]
    )
    assert {j["job_name"]: j["static_configs"][0]["targets"] for j in config["scrape_configs"]} == {
        spec.name: [f"127.0.0.1:{spec.port}"] for spec in SERVICES
    }
