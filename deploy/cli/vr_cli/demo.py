"""`vr demo`: a living system in one command, on top of `make up`.

Creates a health system with three facilities and a vendor, a quarterly contract (shared savings on
the cost of care, readmission and denial-rate incentives, an EHR uptime SLA), streams a year of events
through the gateway, waits for the KPI engine, then prints each quarter's KPIs and statement.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.table import Table

from vr_cli.client import Api, ApiError
from vr_cli.demo_data import GO_LIVE, baseline_cost_per_day, events, feed_closes
from vr_cli.formats import as_fhir, as_hl7
from vr_cli.main import print_statement, print_statements, push, push_fhir, push_hl7

HEALTH, VENDOR, CONTRACT = "demo-mission", "demo-acme", "demo-partnership"
FACILITIES = ["mission-main", "mission-west", "mission-north"]
ZONE = "UTC"
FIRST_DAY = date(2026, 1, 1)
QUARTERS = [
    ("2026-Q1", date(2026, 1, 1), date(2026, 4, 1)),
    ("2026-Q2", date(2026, 4, 1), date(2026, 7, 1)),
    ("2026-Q3", date(2026, 7, 1), date(2026, 10, 1)),
    ("2026-Q4", date(2026, 10, 1), date(2027, 1, 1)),
]
COST = {"kpi": "cost_total", "dimension": {"category": "total_cost_of_care"}}


def contract(health: str = HEALTH, contract_id: str = CONTRACT) -> dict[str, Any]:
    def incentive(
        term_id: str, kpi: str, baseline: str, target: str, floor: str, reward: str, penalty: str
    ) -> dict[str, Any]:
        return {
            "id": term_id,
            "kind": "kpi_incentive",
            "kpi": kpi,
            "direction": "lower_is_better",
            "baseline": baseline,
            "target": target,
            "floor": floor,
            "max_reward": reward,
            "max_penalty": penalty,
            "min_denominator": "50",
        }

    return {
        "id": contract_id,
        "name": "EMR value partnership",
        "health_system": health,
        "vendor": VENDOR,
        "facilities": FACILITIES,
        "currency": "USD",
        "timezone": ZONE,
        "start": "2026-01-01",
        "end": "2030-12-31",
        "period": "quarter",
        "runout_days": 60,
        "fees": {"monthly_fee": "50000.00"},
        "terms": [
            {
                "id": "savings",
                "kind": "shared_savings",
                "expenditure": COST,
                "benchmark": {"input": "benchmark"},
                "min_savings_rate": "0.02",
                "savings_rate": "0.50",
                "loss_rate": "0.30",
                "savings_caps": [{"rate": "0.10", "of": "benchmark"}],
            },
            incentive(
                "readmissions", "readmission_rate_30d", "0.15", "0.11", "0.18", "250000.00", "100000.00"
            ),
            incentive("denials", "claim_denial_rate", "0.12", "0.07", "0.15", "150000.00", "75000.00"),
            {
                "id": "ehr-uptime",
                "kind": "sla_credit",
                "kpi": {"kpi": "uptime_pct", "dimension": {"system": "ehr"}},
                "fee": "monthly_fee",
                "tiers": [
                    {"below": "99.9", "credit_rate": "0.05"},
                    {"below": "99.5", "credit_rate": "0.10"},
                    {"below": "99.0", "credit_rate": "0.20"},
                ],
            },
        ],
        "caps": {"max_reward": "1500000.00", "max_penalty": "500000.00"},
    }


def _created(api: Api, path: str, body: dict[str, Any]) -> None:
    try:
        api.call("POST", path, json=body)
    except ApiError as error:
        if error.status_code != 409:  # already there from an earlier demo: reuse it
            raise


def _key(api: Api, tenant: str, role: str) -> str:
    return str(
        api.call("POST", "/v1/api-keys", json={"tenant_id": tenant, "role": role, "name": f"demo {role}"})[
            "key"
        ]
    )


def run(url: str, admin_key: str, console: Console, format_: str = "json") -> None:
    """`format_` json, hl7 or fhir: how the year is sent (a health system and contract per format, so
    each format's facts are counted on their own)."""
    health_id = HEALTH if format_ == "json" else f"{HEALTH}-{format_}"
    contract_id = CONTRACT if format_ == "json" else f"{CONTRACT}-{format_}"
    now = datetime.now(UTC)
    last_day = (now - timedelta(days=1)).date()
    with Api(url, admin_key) as admin:
        console.rule("[bold]1. Tenants, keys, contract")
        _created(
            admin,
            "/v1/tenants",
            {
                "id": health_id,
                "name": "Mission Health (demo)",
                "kind": "health_system",
                "timezone": ZONE,
                "facilities": FACILITIES,
            },
        )
        _created(
            admin,
            "/v1/tenants",
            {"id": VENDOR, "name": "Acme EMR (demo)", "kind": "vendor", "timezone": ZONE},
        )
        pipeline, hs_admin, billing = (
            _key(admin, health_id, "pipeline"),
            _key(admin, health_id, "tenant_admin"),
            _key(admin, VENDOR, "billing"),
        )
    with Api(url, hs_admin) as health:
        _created(health, "/v1/contracts", contract(health_id, contract_id))
        for period, start, end in QUARTERS:
            days = (min(end, last_day + timedelta(days=1)) - start).days
            if days > 0:  # the benchmark: what care cost per day before go-live, for the days of the quarter
                benchmark = baseline_cost_per_day(FACILITIES) * days
                health.call(
                    "PUT",
                    f"/v1/contracts/{contract_id}/periods/{period}/inputs",
                    json={"benchmark": f"{benchmark:.2f}"},
                )
        console.print(
            f"health system [cyan]{health_id}[/cyan] ({', '.join(FACILITIES)}), "
            f"vendor [cyan]{VENDOR}[/cyan], contract [cyan]{contract_id}[/cyan]; go-live {GO_LIVE}"
        )

        console.rule(f"[bold]2. A year of events through the gateway ({format_})")
        cutoff = now - timedelta(minutes=10)
        stream = [
            e
            for e in events(FACILITIES, FIRST_DAY - timedelta(days=45), last_day)
            if e["time"] < cutoff.isoformat().replace("+00:00", "Z")
        ]
        # Then the interface engine's close: every feed complete through the start of today (local).
        through = datetime.combine(last_day + timedelta(days=1), datetime.min.time(), ZoneInfo(ZONE))
        feeds = sorted({f for kpi in health.call("GET", "/v1/kpis")["items"] for f in kpi["feeds"]})
        stream += feed_closes(FACILITIES, feeds, through, now)
        _stream(url, pipeline, stream, format_, console)
        console.print(f"feeds complete through {through}")

        console.rule("[bold]3. Waiting for the KPI engine")
        _wait_until_counted(health, console)

        console.rule("[bold]4. KPIs per quarter (all facilities)")
        _kpi_table(health, console, health_id)
    with Api(url, billing) as vendor:
        console.rule("[bold]5. Statements, as the vendor's billing system sees them")
        print_statements(vendor.items(f"/v1/contracts/{contract_id}/settlements"))
        print_statement(vendor.call("GET", f"/v1/contracts/{contract_id}/settlements/2026-Q2"))


def _stream(url: str, pipeline: str, stream: list[dict[str, Any]], format_: str, console: Console) -> None:
    """What the format carries goes first, through its own path; the rest (and the feed closes) as JSON."""
    if format_ == "hl7":
        messages, stream = as_hl7(stream)
        acknowledged, refused = push_hl7(url, pipeline, messages)
        console.print(f"{acknowledged:,} HL7 v2 messages AA, {len(refused)} not")
    elif format_ == "fhir":
        lines, stream = as_fhir(stream)
        stored, refused_entries = push_fhir(url, pipeline, lines)
        console.print(f"{stored:,} FHIR resources stored (202), {len(refused_entries)} refused")
    accepted, rejected = push(url, pipeline, stream, 1000)
    console.print(f"{accepted:,} catalogue events accepted, {len(rejected)} rejected")


def _wait_until_counted(api: Api, console: Console) -> None:
    params = {"from": "2026-01-01", "to": "2027-01-01", "granularity": "year"}
    previous, stable = None, 0
    with console.status("the engine is counting…"):
        for _ in range(600):
            sample = api.call("GET", "/v1/kpis/clean_claim_rate/values", params=params)["values"][0][
                "sample_size"
            ]
            stable = stable + 1 if sample == previous else 0
            if stable >= 3 and sample != "0":
                return
            previous = sample
            time.sleep(1)


def _kpi_table(api: Api, console: Console, health_id: str = HEALTH) -> None:
    rows = [
        ("readmission_rate_30d", None, "readmissions"),
        ("claim_denial_rate", None, "denial rate"),
        ("clean_claim_rate", None, "clean claims"),
        ("uptime_pct", "ehr", "EHR uptime %"),
        ("cost_total", "total_cost_of_care", "cost of care"),
    ]
    table = Table(title=f"KPIs of {health_id} (go-live {GO_LIVE})")
    table.add_column("KPI")
    for period, _, _ in QUARTERS:
        table.add_column(period, justify="right")
    for kpi, dimension, label in rows:
        params: dict[str, str] = {"from": "2026-01-01", "to": "2027-01-01", "granularity": "quarter"}
        if dimension:
            params["dimension"] = dimension
        values = api.call("GET", f"/v1/kpis/{kpi}/values", params=params)["values"]
        table.add_row(label, *(_fmt(v["value"]) for v in values))
    console.print(table)


def _fmt(value: str | None) -> str:
    if value is None:
        return "—"
    number = float(value)
    return f"{number:,.0f}" if number >= 1000 else f"{number:.4f}"
