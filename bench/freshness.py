"""End-to-end freshness: ingest's 202 → the value visible through the KPI query API.

Ingest and the KPI engine run as their own processes (one worker each) on a local broker and
PostgreSQL (or KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL). The load generator offers 1,000 events/s as a
batch of 100 clean-claim submissions every 100 ms. After each 202 it polls the day's clean-claim rate
through `GET /v1/kpis/clean_claim_rate/values` until the denominator includes that batch; the time
from the 202 to that answer is the batch's freshness.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx

from bench.infra import SERVICE_SECRETS, broker_servers, database_url, identity_token, service_process
from bench.report import machine, today, write_section
from vr_shared.identity import Identity
from vr_shared.roles import Role

RATE, BATCH, SECONDS = 1_000, 100, 30
TENANT, ZONE, FACILITY = "bench-health", "America/New_York", "bench-main"


@contextlib.contextmanager
def stack() -> Iterator[tuple[str, str]]:
    """Ingest and the KPI engine, each its own process; their base URLs."""
    with broker_servers() as kafka, database_url() as database:
        suffix = uuid.uuid4().hex[:8]
        common = {
            "KAFKA_BOOTSTRAP_SERVERS": kafka,
            "DATABASE_URL": database,
            "VR_EVENTS_TOPIC": f"bench.fresh.{suffix}",
        }
        engine_env = {
            **common,
            **SERVICE_SECRETS["kpi_engine"],
            "VR_DB_SCHEMA": f"bench_fresh_{suffix}",
            "VR_CONSUMER_GROUP": f"bench-{suffix}",
            "VR_DEAD_LETTER_TOPIC": f"bench.dlq.{suffix}",
            "VR_UPDATES_TOPIC": f"bench.upd.{suffix}",
        }
        with (
            service_process("ingest", {**common, **SERVICE_SECRETS["ingest"]}) as ingest,
            service_process("kpi_engine", engine_env) as engine,
        ):
            yield ingest, engine


def token(role: str, service: str) -> str:
    identity = Identity(
        tenant=TENANT, role=Role(role), key_id="bench", facilities=frozenset({FACILITY}), timezone=ZONE
    )
    return identity_token(identity, service)


async def main() -> None:
    freshness: list[float] = []
    with stack() as (ingest_url, engine_url):
        async with (
            httpx.AsyncClient(base_url=ingest_url, timeout=10) as ingest,
            httpx.AsyncClient(base_url=engine_url, timeout=10) as engine,
        ):
            writer, reader = (
                {"X-VR-Identity": token("pipeline", "ingest")},
                {"X-VR-Identity": token("ops", "kpi-engine")},
            )
            await _wait_ready(engine)
            day = datetime.now(UTC).astimezone(ZoneInfo(ZONE)).date()
            query = {
                "facility": FACILITY,
                "from": day.isoformat(),
                "to": (day + timedelta(days=1)).isoformat(),
            }
            posted = 0
            pollers = []

            async def until_visible(expected: int, accepted_at: float) -> None:
                while True:
                    response = await engine.get(
                        "/v1/kpis/clean_claim_rate/values", params=query, headers=reader
                    )
                    if (
                        response.status_code == 200
                        and int(response.json()["values"][0]["denominator"]) >= expected
                    ):
                        freshness.append(time.perf_counter() - accepted_at)
                        return
                    await asyncio.sleep(0.01)

            started = time.perf_counter()
            for k in range(SECONDS * RATE // BATCH):
                await asyncio.sleep(max(0.0, started + k * BATCH / RATE - time.perf_counter()))
                now = datetime.now(UTC).isoformat()
                events = [
                    {
                        "id": f"f-{k}-{i}",
                        "source": "bench",
                        "type": "claim.submitted",
                        "time": now,
                        "facility": FACILITY,
                        "data": {"claim_ref": f"c{k}-{i}", "amount": "10.00", "clean": True},
                    }
                    for i in range(BATCH)
                ]
                response = await ingest.post("/v1/events", json=events, headers=writer)
                if response.status_code != 202:
                    raise RuntimeError(f"ingest answered {response.status_code}")
                posted += BATCH
                pollers.append(asyncio.create_task(until_visible(posted, time.perf_counter())))
            await asyncio.wait_for(asyncio.gather(*pollers), timeout=120)
    ordered = sorted(freshness)
    p50, p99 = statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    body = f"""## End-to-end freshness

{today()} — {machine()}. Ingest and the KPI engine as separate processes (one worker each), local broker
and PostgreSQL. {RATE:,} events/s offered for {SECONDS} s as batches of {BATCH}; freshness is from each
batch's 202 until `GET /v1/kpis/clean_claim_rate/values` counts it.
Run: `make bench` (`python -m bench.freshness`).

| batches | p50 | p99 | max |
|---:|---:|---:|---:|
| {len(ordered)} | {p50 * 1000:.0f} ms | {p99 * 1000:.0f} ms | {ordered[-1] * 1000:.0f} ms |

* **p99 = {p99 * 1000:.0f} ms** — target < 1 s: {"meets" if p99 < 1 else "misses"} the target.
"""
    write_section("freshness", body)
    print(body)


async def _wait_ready(engine: httpx.AsyncClient) -> None:
    for _ in range(300):
        if (await engine.get("/readyz")).status_code == 200:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError("the engine did not become ready")


if __name__ == "__main__":
    asyncio.run(main())
