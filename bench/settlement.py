"""Statement computation: a contract with 10 terms over a year of daily KPI data, through the APIs.

For 100,000 and 1,000,000 stored events (a year, two facilities, loaded into the KPI engine's tables as
`bench/kpi_queries.py` does), the KPI engine and settlement run as they do in production (their own
processes, one uvicorn worker each, on loopback; real broker and PostgreSQL), and
`GET /v1/contracts/{id}/settlements/2026` is asked 200 times: six KPI incentives, a days-in-A/R
incentive, an SLA credit month by month (12 readings), shared savings and a risk corridor on the cost
KPI — 23 KPI readings per statement.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import text

from bench.infra import SERVICE_SECRETS, broker_servers, database_url, identity_token, service_process
from bench.kpi_queries import TENANT, ZONE, load
from bench.report import machine, today, write_section
from bench.support import percentile
from tests.support.streams import FACILITIES
from vr_shared.db import create_engine
from vr_shared.identity import HEADER, Identity
from vr_shared.roles import Role

SIZES = (100_000, 1_000_000)
REQUESTS = 200


def incentive(
    term_id: str, kpi: str, direction: str, baseline: str, target: str, floor: str
) -> dict[str, Any]:
    return {
        "id": term_id,
        "kind": "kpi_incentive",
        "kpi": kpi,
        "direction": direction,
        "baseline": baseline,
        "target": target,
        "floor": floor,
        "max_reward": "250000.00",
        "max_penalty": "100000.00",
        "min_denominator": "10",
    }


COST = {"kpi": "cost_total", "dimension": {"category": "total_cost_of_care"}}
CONTRACT = {
    "id": "bench-10-terms",
    "name": "Ten-term partnership",
    "health_system": TENANT,
    "vendor": "bench-vendor",
    "facilities": list(FACILITIES),
    "currency": "USD",
    "timezone": ZONE,
    "start": "2026-01-01",
    "end": "2030-12-31",
    "period": "year",
    "runout_days": 90,
    "fees": {"monthly_fee": "250000.00"},
    "terms": [
        incentive("clean-claims", "clean_claim_rate", "higher_is_better", "0.80", "0.95", "0.70"),
        incentive("denials", "claim_denial_rate", "lower_is_better", "0.10", "0.05", "0.15"),
        incentive("cpoe", "cpoe_rate", "higher_is_better", "0.60", "0.90", "0.40"),
        incentive("bcma", "bcma_compliance", "higher_is_better", "0.70", "0.95", "0.50"),
        incentive("alos", "alos_days", "lower_is_better", "5.0", "3.0", "7.0"),
        incentive("readmissions", "readmission_rate_30d", "lower_is_better", "0.15", "0.10", "0.25"),
        incentive("ar-days", "days_in_ar", "lower_is_better", "50", "35", "65"),
        {
            "id": "ehr-sla",
            "kind": "sla_credit",
            "kpi": {"kpi": "uptime_pct", "dimension": {"system": "ehr"}},
            "fee": "monthly_fee",
            "tiers": [{"below": "99.9", "credit_rate": "0.05"}, {"below": "99.0", "credit_rate": "0.10"}],
        },
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
        {
            "id": "corridor",
            "kind": "risk_corridor",
            "actual": COST,
            "target": {"input": "benchmark"},
            "bands": [{"from": "0.03", "to": "0.08", "share": "0.50"}, {"from": "0.08", "share": "0.80"}],
        },
    ],
}


@contextlib.contextmanager
def services(kafka: str, url: str, suffix: str) -> Iterator[tuple[str, str]]:
    """The KPI engine and settlement as their own processes, as in production; yields settlement's
    base URL and the engine's schema (filled before requests are timed)."""
    common = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
        "DATABASE_URL": url,
        "VR_UPDATES_TOPIC": f"bench.updates.{suffix}",
    }
    engine_env = {
        **common,
        **SERVICE_SECRETS["kpi_engine"],
        "VR_DB_SCHEMA": f"bench_kpi_{suffix}",
        "VR_EVENTS_TOPIC": f"bench.events.{suffix}",
        "VR_DEAD_LETTER_TOPIC": f"bench.dlq.{suffix}",
        "VR_CONSUMER_GROUP": f"bench-engine-{suffix}",
    }
    with service_process("kpi_engine", engine_env) as engine_url:
        settlement_env = {
            **common,
            **SERVICE_SECRETS["settlement"],
            "VR_DB_SCHEMA": f"bench_settlement_{suffix}",
            "VR_KPI_ENGINE_URL": engine_url,
            "VR_CONSUMER_GROUP": f"bench-settlement-{suffix}",
        }
        with service_process("settlement", settlement_env) as settlement_url:
            yield settlement_url, engine_env["VR_DB_SCHEMA"]


async def measure(kafka: str, url: str, size: int) -> tuple[list[float], str]:
    suffix = uuid.uuid4().hex[:8]
    headers = {
        HEADER: identity_token(
            Identity(TENANT, Role.TENANT_ADMIN, "bench", frozenset(FACILITIES), "health_system", ZONE),
            "settlement",
        )
    }
    with services(kafka, url, suffix) as (settlement_url, engine_schema):
        await load(url, engine_schema, size)  # the engine migrated its schema at start-up
        async with httpx.AsyncClient(base_url=settlement_url, timeout=30) as client:
            assert (await client.post("/v1/contracts", json=CONTRACT, headers=headers)).status_code == 201
            path = f"/v1/contracts/{CONTRACT['id']}"
            # A benchmark 4 % above the year's cost of care, so savings and the corridor both engage.
            await client.put(f"{path}/periods/2026/inputs", json={"benchmark": "1"}, headers=headers)
            first = (await client.get(f"{path}/settlements/2026", headers=headers)).json()
            savings = next(line for line in first["lines"] if line["term_id"] == "savings")
            cost = Decimal(savings["inputs"]["expenditure"]["value"])
            inputs = {"benchmark": format((cost * Decimal("1.04")).quantize(Decimal("0.01")), "f")}
            put = await client.put(f"{path}/periods/2026/inputs", json=inputs, headers=headers)
            assert put.status_code == 200
            latencies, total = [], ""
            for _ in range(REQUESTS):
                started = time.perf_counter()
                response = await client.get(f"{path}/settlements/2026", headers=headers)
                latencies.append(time.perf_counter() - started)
                assert response.status_code == 200, response.text
                total = response.json()["total"]
    admin = create_engine(url)
    async with admin.begin() as conn:
        for schema in (engine_schema, f"bench_settlement_{suffix}"):
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    await admin.dispose()
    return latencies, total


async def main() -> None:
    rows = []
    with broker_servers() as kafka, database_url() as url:
        for size in SIZES:
            latencies, total = await measure(kafka, url, size)
            rows.append((size, statistics.median(latencies), percentile(latencies, 0.99), total))
    table = "\n".join(
        f"| {size:,} | {p50 * 1000:.1f} ms | {p99 * 1000:.1f} ms | {total} |"
        for size, p50, p99, total in rows
    )
    worst = max(p99 for _, _, p99, _ in rows)
    growth = rows[-1][2] / rows[0][2]
    body = f"""## Settlement: statement computation

{today()} — {machine()}. `GET /v1/contracts/{{id}}/settlements/2026` for a contract with 10 terms (7 KPI
incentives, an SLA credit month by month, shared savings and a risk corridor on cost) over a year of
daily KPI data for two facilities: 23 KPI readings per statement, read in one request to the KPI engine;
settlement and engine as their own processes (one uvicorn worker each) on loopback. {REQUESTS}
sequential requests per size.
Run: `make bench` (`python -m bench.settlement`).

| stored events | p50 | p99 | statement total |
|---:|---:|---:|---:|
{table}

* **p99 = {worst * 1000:.1f} ms** — target < 50 ms: {"meets" if worst < 0.05 else "misses"} the target.
* p99 from {SIZES[0]:,} to {SIZES[-1]:,} events: ×{growth:.2f} (target: independent of stored events) — each
  reading sums at most 366 day cells per facility, whatever the number of events.
"""
    write_section("settlement-statements", body)
    print(body)


if __name__ == "__main__":
    asyncio.run(main())
