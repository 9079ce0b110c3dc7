"""Gateway overhead: ingest throughput through the gateway against ingest called directly.

Ingest and the gateway run as their own processes (one uvicorn worker each), as in production; this
process is the load generator (batches of 500 events, several requests in flight, as
`bench/ingest.py`). Through the gateway, requests carry an API key; the gateway authenticates it,
checks the role and rate limit, signs the identity and streams the body to ingest. Interleaved rounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import uuid

import httpx

from bench.infra import ADMIN_KEY, SERVICE_SECRETS, broker_servers, database_url, service_process
from bench.ingest import (
    BATCH,
    CONCURRENCY,
    FACILITIES,
    TENANT,
    TIMEZONE,
    ingest_process,
    measure_ingest,
    post_load,
    request_bodies,
)
from bench.report import machine, today, write_section
from bench.support import spread

GATEWAY_ROUNDS = 5


def gateway_process(database: str, ingest_url: str) -> contextlib.AbstractContextManager[str]:
    env = {
        "DATABASE_URL": database,
        "VR_DB_SCHEMA": f"bench_gateway_{uuid.uuid4().hex[:8]}",
        **SERVICE_SECRETS["gateway"],
        "VR_INGEST_URL": ingest_url,
        "VR_RATE_LIMIT_PER_SECOND": "100000",
        "VR_RATE_LIMIT_BURST": "100000",
    }
    return service_process("gateway", env)


async def pipeline_key(gateway: str) -> str:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with httpx.AsyncClient(base_url=gateway) as client:
        tenant = {"id": TENANT, "name": TENANT, "kind": "health_system", "timezone": TIMEZONE}
        created = await client.post(
            "/v1/tenants", json={**tenant, "facilities": list(FACILITIES)}, headers=admin
        )
        assert created.status_code == 201, created.text
        key = await client.post(
            "/v1/api-keys", json={"tenant_id": TENANT, "role": "pipeline", "name": "bench"}, headers=admin
        )
        return str(key.json()["key"])


async def main() -> None:
    bodies = request_bodies()
    direct, through, latencies = [], [], []
    with (
        broker_servers() as bootstrap,
        database_url() as database,
        ingest_process(bootstrap, f"bench.gw.{uuid.uuid4().hex[:8]}") as ingest_url,
        gateway_process(database, ingest_url) as gateway,
    ):
        key = await pipeline_key(gateway)

        async def via_gateway() -> float:
            rate, round_latencies = await post_load(gateway, {"Authorization": f"Bearer {key}"}, bodies)
            latencies.extend(round_latencies)
            return rate

        async def to_ingest() -> float:
            return (await measure_ingest(ingest_url, bodies))[0]

        for round_number in range(GATEWAY_ROUNDS):
            # Alternating which path goes first, and comparing within a round: the machine's speed
            # drifts over minutes (shared cores), which a ratio of medians would take for overhead.
            if round_number % 2 == 0:
                direct.append(await to_ingest())
                through.append(await via_gateway())
            else:
                through.append(await via_gateway())
                direct.append(await to_ingest())
    ratios = [t / d for t, d in zip(through, direct, strict=True)]
    ratio = statistics.median(ratios)
    verdict = "meets" if ratio >= 0.8 else "misses"
    ordered = sorted(latencies)
    p50, p99 = ordered[len(ordered) // 2] * 1000, ordered[int(0.99 * (len(ordered) - 1))] * 1000
    body = f"""## Gateway overhead

{today()} — {machine()}. Ingest and the gateway as their own processes (one uvicorn worker each) on
loopback; batches of {BATCH} events, {CONCURRENCY} requests in flight, load generator on the same machine.
{GATEWAY_ROUNDS} rounds, each measuring both paths back to back (which goes first alternates); median
(range in brackets). Run: `make bench` (`python -m bench.gateway`).

| path | events/s |
|---|---:|
| through the gateway (API key → identity token, body forwarded) | {spread(through)} |
| ingest called directly (identity token signed by the load generator) | {spread(direct)} |

* **through the gateway / direct = {ratio:.2f}** (median of the rounds' ratios, {min(ratios):.2f} to
  {max(ratios):.2f}) — target ≥ 0.8: {verdict} the target.
* Request latency through the gateway: p50 {p50:.0f} ms, p99 {p99:.0f} ms ({len(latencies)} requests).
"""
    write_section("gateway-overhead", body)
    print(body)


if __name__ == "__main__":
    asyncio.run(main())
