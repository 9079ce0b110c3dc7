"""Dashboards and alert rules against the real stack, watched by a real Prometheus (docs/operations.md).

Every service runs as its own process (as deployed), a second KPI engine instance that cannot keep up and
a second ingest instance whose broker goes away stand for the troubles the alerts are about; Prometheus
(Debian's package) scrapes them all every second with the repository's alert rules loaded. A realistic
month of hospital events goes through the gateway, a period is finalized (once its feeds are declared
complete) and late data adjusts it; a contract on a feed never declared complete is blocked; the
vendor's webhook receiver is down. Then:

- every PromQL expression of every dashboard panel and template variable returns data, now;
- every alert rule's expression returns data during the scenario (each alert's situation is provoked)
  and every rule evaluates without error in Prometheus;
- every `vr_*` metric the dashboards and rules name is one the running services export.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic_settings import BaseSettings
from sqlalchemy import text

from devstack.broker import running_broker
from devstack.processes import ServiceUrl, service_process, settings_environment
from tests.integration.conftest import ingest_settings
from tests.integration.gateway.conftest import ADMIN_KEY, drop_schemas, gateway_settings
from tests.integration.kpi.test_engine_service import engine_settings
from tests.integration.settlement.conftest import settlement_settings
from tests.support.identity import token
from tests.support.infrastructure import Infrastructure
from tests.support.observability import (
    SERIES,
    Expression,
    Prometheus,
    alert_expressions,
    as_promql,
    dashboard_expressions,
    running_prometheus,
)
from tests.support.waiting import eventually, metric_value
from vr_cli.demo_data import events as demo_events
from vr_shared.db import create_engine
from vr_shared.kafka import create_producer
from vr_shared.secrets import new_key_pair

HEALTH, VENDOR, CONTRACT = "ops-health", "ops-vendor", "ops-partnership"
UNDECLARED = "ops-cost-savings"
FACILITIES = ["ops-main", "ops-west"]


@dataclass
class Observed:
    prometheus: Prometheus
    started: float  # scenario start (epoch seconds), for range queries over it


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _matured_month(today: date) -> tuple[str, date]:
    """The month of 62 days ago: it ended at least 31 days ago, so its 30-day readmission rate is mature
    and it can be finalized (a provisional reading is never money, docs/settlement.md)."""
    start = _month_start(today - timedelta(days=62))
    return f"{start:%Y-%m}", start


def contract(first_day: date) -> dict[str, Any]:
    return {
        "id": CONTRACT,
        "name": "Operations test partnership",
        "health_system": HEALTH,
        "vendor": VENDOR,
        "facilities": FACILITIES,
        "currency": "USD",
        "timezone": "UTC",
        "start": first_day.isoformat(),
        "end": (first_day + timedelta(days=730)).isoformat(),
        "period": "month",
        "runout_days": 0,
        "fees": {"monthly_fee": "10000.00"},
        "terms": [
            {
                "id": "readmissions",
                "kind": "kpi_incentive",
                "kpi": "readmission_rate_30d",
                "direction": "lower_is_better",
                "baseline": "0.15",
                "target": "0.05",
                "floor": "0.20",
                "max_reward": "50000.00",
                "max_penalty": "20000.00",
                "min_denominator": "1",
            },
            {
                "id": "ehr-uptime",
                "kind": "sla_credit",
                "kpi": {"kpi": "uptime_pct", "dimension": {"system": "ehr"}},
                "fee": "monthly_fee",
                "tiers": [
                    {"below": "99.9", "credit_rate": "0.05"},
                    {"below": "99.5", "credit_rate": "0.10"},
                    {"below": "99.0", "credit_rate": "0.20"},
                    {"below": "90.0", "credit_rate": "0.50"},
                ],
            },
        ],
    }


def outage(id_: str, facility: str, start: datetime, hours: float) -> dict[str, Any]:
    end = start + timedelta(hours=hours)
    return {
        "id": id_,
        "source": "monitoring",
        "type": "system.outage",
        "time": end.isoformat(),
        "facility": facility,
        "data": {
            "system": "ehr",
            "started_at": start.isoformat(),
            "ended_at": end.isoformat(),
            "planned": False,
        },
    }


class Scenario:
    """A month of hospital traffic through the gateway and the troubles the alerts are about."""

    def __init__(self, gateway: httpx.AsyncClient) -> None:
        self.gateway = gateway
        self.now = datetime.now(UTC)
        self.period, self.period_start = _matured_month(self.now.date())
        self.keys: dict[str, str] = {}

    async def call(self, method: str, path: str, key: str, expected: int, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {key}", **kwargs.pop("headers", {})}
        response = await self.gateway.request(method, path, headers=headers, **kwargs)
        assert response.status_code == expected, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    async def parties_and_contract(self) -> None:
        for tenant in (
            {
                "id": HEALTH,
                "name": "Ops Health",
                "kind": "health_system",
                "timezone": "UTC",
                "facilities": FACILITIES,
            },
            {"id": VENDOR, "name": "Ops Vendor", "kind": "vendor", "timezone": "UTC"},
        ):
            await self.call("POST", "/v1/tenants", ADMIN_KEY, 201, json=tenant)
        for name, tenant, role in (
            ("pipeline", HEALTH, "pipeline"),
            ("admin", HEALTH, "tenant_admin"),
            ("ops", HEALTH, "ops"),
            ("billing", VENDOR, "billing"),
        ):
            body = {"tenant_id": tenant, "role": role, "name": name}
            self.keys[name] = (await self.call("POST", "/v1/api-keys", ADMIN_KEY, 201, json=body))["key"]
        # The vendor's billing system subscribes a receiver that is down (nothing listens on port 9).
        hooks = {"url": "http://127.0.0.1:9/hooks", "events": ["contract.updated", "statement.finalized"]}
        await self.call("POST", "/v1/webhook-endpoints", self.keys["billing"], 201, json=hooks)
        first_day = _month_start(self.period_start - timedelta(days=1))
        await self.call("POST", "/v1/contracts", self.keys["admin"], 201, json=contract(first_day))
        # Shared savings on the cost of care, whose feed nobody declares complete: blocked past run-out.
        savings = {
            "id": "savings",
            "kind": "shared_savings",
            "expenditure": {"kpi": "cost_total", "dimension": {"category": "total_cost_of_care"}},
            "benchmark": "100000000.00",
            "savings_rate": "0.5",
        }
        undeclared = {**contract(first_day), "id": UNDECLARED, "terms": [savings]}
        await self.call("POST", "/v1/contracts", self.keys["admin"], 201, json=undeclared)

    async def month_of_events(self) -> int:
        """Posts the events from the finalized month's start (or a month and a half ago, if earlier)
        until now; returns how many the engine will store."""
        cutoff = (self.now - timedelta(hours=7)).isoformat().replace("+00:00", "Z")
        first = min(self.period_start, self.now.date() - timedelta(days=45))
        stream = [
            e
            for e in demo_events(FACILITIES, first, self.now.date())
            if e["time"] < cutoff  # the newest event 7 h old: longer than the silent-feed threshold
        ]
        # An EHR outage well inside the last 30 days: uptime is below the SLA's 99.9 % for sure.
        stream.append(outage("ops-outage-recent", "ops-main", self.now - timedelta(days=3), 3))
        for number, start in enumerate(range(0, len(stream), 1000)):
            answer = await self.call(
                "POST", "/v1/events", self.keys["pipeline"], 202, json=stream[start : start + 1000]
            )
            assert answer["rejected"] == 0, answer
            if number % 4 == 3:
                await asyncio.sleep(1.2)  # the lagging engine's lag grows over several scrapes
        # Redelivered events (duplicates), an id reused with another payload (conflict), an invalid
        # event (rejected, the rest accepted), a body that is no JSON (refused), a wrong key.
        claim = next(e for e in stream if e["type"] == "claim.submitted")
        changed = {**claim, "time": claim["time"].replace(":00Z", ":01Z")}
        mixed = [*stream[:20], changed, {"id": "bad", "type": "nope"}]
        answer = await self.call("POST", "/v1/events", self.keys["pipeline"], 202, json=mixed)
        assert answer["rejected"] == 1, answer
        await self.call(
            "POST",
            "/v1/events",
            self.keys["pipeline"],
            400,
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        )
        await self.call("GET", "/v1/contracts", "vrk_not-a-key-of-anyone-0123456789abcdef", 401)
        return len(stream)

    async def poison_message(self, bootstrap_servers: str, topic: str) -> None:
        producer = create_producer(bootstrap_servers, client_id="ops-test")
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"\x00 not an event", key=HEALTH.encode())
        finally:
            await producer.stop()

    async def statement(self) -> dict[str, Any]:
        path = f"/v1/contracts/{CONTRACT}/settlements/{self.period}"
        return dict(await self.call("GET", path, self.keys["admin"], 200))

    async def finalize_then_late_outages(self, engine: ServiceUrl, stored: int) -> None:
        """Finalized once the engine has stored every event, so what changes after is the late data's."""

        async def processed() -> float:
            async with httpx.AsyncClient() as client:
                scraped = (await client.get(f"{engine.metrics}/metrics")).text
            return metric_value(scraped, "vr_kpi_events_processed_total")

        await eventually(processed, lambda n: n >= stored, 90)
        # The pipelines' close of the month: ADT and monitoring feeds complete through its end. The
        # cost feed is never declared: the savings contract on it is the blocked statement.
        period_end = _month_start(self.period_start + timedelta(days=32))
        through = datetime.combine(period_end, datetime.min.time(), UTC).isoformat()
        closes = [
            {
                "id": f"close-{feed}-{facility}-{self.period}",
                "source": "interface-engine",
                "type": "feed.complete",
                "time": through,
                "facility": facility,
                "data": {"feed": feed, "through": through},
            }
            for facility in FACILITIES
            for feed in ("adt", "systems")
        ]
        await self.call("POST", "/v1/events", self.keys["pipeline"], 202, json=closes)
        await eventually(self.statement, lambda s: s["data_complete"], 60)
        path = f"/v1/contracts/{CONTRACT}/settlements/{self.period}/finalize"
        await self.call("POST", path, self.keys["billing"], 201, headers={"Idempotency-Key": "ops-final"})
        start = datetime.combine(self.period_start + timedelta(days=2), datetime.min.time(), UTC)
        # Four days down at both facilities take the month below 90 % from wherever the generated
        # outages (at most a few hours each) left it: the credit changes, whatever today's date.
        late = [outage(f"ops-late-{f}", f, start, 96) for f in FACILITIES]
        await self.call("POST", "/v1/events", self.keys["pipeline"], 202, json=late)
        adjusted = await eventually(self.statement, lambda s: len(s["adjustments"]) == 1, 60)
        assert adjusted["status"] == "final"
        path = f"/v1/contracts/{UNDECLARED}/settlements/{self.period}"
        blocked = await self.call("GET", path, self.keys["admin"], 200)
        assert blocked["status"] == "blocked", blocked

    async def receiver_down_for_hours(self, database_url: str, schema: str) -> None:
        """The billing system's receiver has been down for two hours: its deliveries keep failing and
        wait for their next attempt. A test cannot wait two hours, so the waiting deliveries' age is
        set back by two hours — the one thing staged here; attempts and backlog are the worker's own."""
        engine = create_engine(database_url, schema=schema)
        try:
            async with engine.begin() as conn:
                await conn.execute(
                    text("UPDATE webhook_deliveries SET created_at = created_at - interval '2 hours'")
                )
        finally:
            await engine.dispose()

    async def broker_gone(self, failing_ingest: str) -> None:
        identity = {"X-VR-Identity": token(tenant=HEALTH, facilities=frozenset(FACILITIES), timezone="UTC")}
        batch = [outage(f"ops-unsent-{i}", "ops-main", self.now - timedelta(days=1), 1) for i in range(3)]
        async with httpx.AsyncClient(base_url=failing_ingest, timeout=30) as client:
            for _ in range(4):  # pipelines keep trying (after Retry-After): the 503s go on for a while
                answers = await asyncio.gather(
                    *(client.post("/v1/events", json=batch, headers=identity) for _ in range(4))
                )
                assert {a.status_code for a in answers} == {503}, [a.text for a in answers]
                assert answers[0].headers["Retry-After"]

    async def flood(self) -> None:
        answers = await asyncio.gather(
            *(
                self.gateway.get("/v1/contracts", headers={"Authorization": f"Bearer {self.keys['ops']}"})
                for _ in range(80)
            )
        )
        statuses = [a.status_code for a in answers]
        assert statuses.count(429) > 0 and statuses.count(200) > 0, statuses


@pytest.fixture(scope="module")
async def observed(
    infrastructure: Infrastructure, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Observed]:
    infra = infrastructure
    ingest_config = ingest_settings(infra.kafka_bootstrap_servers)
    engine_config = engine_settings(infra, ingest_config.events_topic).model_copy(
        update={"kpi_gauge_interval_seconds": 1.0}
    )
    # A second engine instance on the same events, one record per batch: it falls behind.
    lagging_config = engine_settings(infra, ingest_config.events_topic).model_copy(
        update={"batch_max_records": 1}
    )
    schemas = [engine_config.db_schema, lagging_config.db_schema]
    workdir = tmp_path_factory.mktemp("operations")  # each process's log is kept here
    with contextlib.ExitStack() as stack, running_broker() as own_broker:

        def start(
            name: str, module: str, settings: BaseSettings, within: contextlib.ExitStack = stack
        ) -> ServiceUrl:
            environment = settings_environment(settings)
            return within.enter_context(
                service_process(module, environment, log_path=workdir / f"{name}.log")
            )

        ingest = start("ingest", "ingest", ingest_config)
        engine = start("kpi-engine", "kpi_engine", engine_config)
        settlement_config = settlement_settings(infra, engine, engine_config.updates_topic).model_copy(
            update={"blocked_check_interval_seconds": 2.0, "webhook_allowed_networks": "127.0.0.0/8"}
        )
        settlement = start("settlement", "settlement", settlement_config)
        # Two replicas of settlement on its database, each with its own group on the change notices so
        # that both see the late data: one deployed with a key the KPI engine does not trust (refused:
        # each reconciliation fails, the period is left pending for the watch), one that cannot reach
        # the engine (its change-feed consumer retries with growing pauses).
        broken = {"db_schema": settlement_config.db_schema, "blocked_check_interval_seconds": 2.0}
        untrusted_key, _ = new_key_pair()
        refused_settlement = start(
            "refused-settlement",
            "settlement",
            settlement_settings(
                infra, engine, engine_config.updates_topic, service_private_key=untrusted_key, **broken
            ),
        )
        cut_off_settlement = start(
            "cut-off-settlement",
            "settlement",
            settlement_settings(infra, "http://127.0.0.1:9", engine_config.updates_topic, **broken),
        )
        upstreams = {"ingest": ingest, "kpi-engine": engine, "settlement": settlement}
        gateway_config = gateway_settings(infra, upstreams, rate_limit_per_second=10, rate_limit_burst=40)
        gateway = start("gateway", "gateway", gateway_config)
        schemas += [settlement_config.db_schema, gateway_config.db_schema]
        # A second ingest instance on a broker of its own, which will go away.
        failing_ingest = start(
            "failing-ingest",
            "ingest",
            ingest_settings(own_broker.bootstrap_servers, publish_timeout_seconds=1),
        )
        lagging = stack.enter_context(contextlib.ExitStack())
        lagging_engine = start("lagging-engine", "kpi_engine", lagging_config, lagging)
        prometheus = stack.enter_context(
            running_prometheus(
                workdir / "prometheus",
                {
                    "gateway": [gateway.metrics],
                    "ingest": [ingest.metrics, failing_ingest.metrics],
                    "kpi-engine": [engine.metrics, lagging_engine.metrics],
                    "settlement": [
                        settlement.metrics,
                        refused_settlement.metrics,
                        cut_off_settlement.metrics,
                    ],
                },
            )
        )
        await eventually(
            lambda: awaitable(prometheus.query, "sum(up)"), lambda r: bool(r) and r[0]["value"][1] == "8"
        )
        started = time.time()
        async with httpx.AsyncClient(base_url=gateway, timeout=30) as client:
            scenario = Scenario(client)
            await scenario.parties_and_contract()
            stored = await scenario.month_of_events()
            await scenario.poison_message(infra.kafka_bootstrap_servers, ingest_config.events_topic)
            await scenario.finalize_then_late_outages(engine, stored)
            await scenario.receiver_down_for_hours(infra.database_url, settlement_config.db_schema)
            own_broker.stop()
            await scenario.broker_gone(failing_ingest)
            await scenario.flood()
        lag_alert = next(e for e in alert_expressions() if e.where == "ConsumerLagGrowing")
        await eventually(
            lambda: awaitable(prometheus.query_range, lag_alert.promql, started, time.time()), bool, 60
        )
        lagging.close()  # seen behind and growing: it has served its purpose (and costs a core)
        yield Observed(prometheus, started)
    await drop_schemas(infra, *schemas)


async def awaitable(function: Any, *args: Any) -> Any:
    """`eventually` polls coroutines; the Prometheus client answers synchronously (a few ms)."""
    return function(*args)


def _has_data(result: list[dict[str, Any]]) -> bool:
    """Some series with a number in it (a histogram quantile of nothing is NaN: no data)."""
    values = (
        [s["value"][1] for s in result]
        if result and "value" in result[0]
        else [v for s in result for _, v in s.get("values", [])]
    )
    return any(v not in ("NaN", "+Inf", "-Inf") for v in values)


DASHBOARD = dashboard_expressions()
ALERT = alert_expressions()


@pytest.mark.parametrize("expression", DASHBOARD, ids=[e.where for e in DASHBOARD])
async def test_every_dashboard_expression_returns_data(observed: Observed, expression: Expression) -> None:
    promql = as_promql(expression)
    result = await eventually(lambda: awaitable(observed.prometheus.query, promql), _has_data, 45)
    if expression.label:  # a template variable: the label it lists is there, with our tenant
        values = {s["metric"].get(expression.label) for s in result}
        assert None not in values, result
        if expression.label == "tenant":
            assert HEALTH in values


@pytest.mark.parametrize("expression", ALERT, ids=[e.where for e in ALERT])
async def test_every_alert_fires_on_its_situation(observed: Observed, expression: Expression) -> None:
    """The rule's expression (its condition, before `for`) holds at some moment of the scenario."""
    prometheus = observed.prometheus
    await eventually(
        lambda: awaitable(prometheus.query_range, expression.promql, observed.started, time.time()),
        _has_data,
        45,
    )


async def test_every_rule_is_loaded_and_evaluates_without_error(observed: Observed) -> None:
    groups = observed.prometheus.get("/api/v1/rules")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert sorted(r["name"] for r in rules) == sorted(e.where for e in ALERT)
    for rule in rules:
        assert rule["health"] == "ok" and not rule.get("lastError"), rule


async def test_every_metric_the_dashboards_and_rules_name_is_exported_by_a_running_service(
    observed: Observed,
) -> None:
    exported = set(observed.prometheus.get("/api/v1/label/__name__/values"))
    named = {name for e in [*DASHBOARD, *ALERT] for name in SERIES.findall(e.promql)}
    assert named - exported == set()
    assert {"vr_kpi_value", "vr_settlement_kpi_target", "vr_gateway_requests_total"} <= exported
