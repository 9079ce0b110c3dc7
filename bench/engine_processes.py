"""The KPI engine as deployed — `python -m kpi_engine` processes in one consumer group — measured from
outside: events/s to fully recorded, time PostgreSQL kept its connections waiting on locks, and where the
machine's CPU went (engine processes, PostgreSQL, broker, everything else; from /proc).

Used by bench.kpi_engine: one instance against two on one tenant, and a backfill through ingest.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

from bench.infra import SERVICE_SECRETS, service_process

SETTLE_S = 12.0  # after every instance is ready: the group's last rebalance has assigned everything
LOCK_SAMPLE_S = 0.05  # between looks at the events stored and the connections waiting on a lock
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class EngineRun:
    events: int
    seconds: float  # from the start to the last event recorded
    steady_seconds: float  # from 10 % to 90 % of the events recorded: the rate once running
    lock_wait_s: float
    cpu: dict[str, float] = field(default_factory=dict)  # CPU-seconds by what used them
    machine_busy: float = 0.0  # share of all cores busy over the run

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def steady_rate(self) -> float:
        """Events/s between 10 % and 90 % recorded: neither start-up nor the last batch's tail."""
        return 0.8 * self.events / self.steady_seconds


@dataclass(frozen=True)
class EngineGroup:
    """Where the group's instances record: their schema (also their connections' application_name)."""

    schema: str
    urls: tuple[str, ...]
    pids: tuple[int, ...]


@contextlib.contextmanager
def engine_group(
    kafka: str, database: str, topic: str, partitions: int, instances: int
) -> Iterator[EngineGroup]:
    """`instances` engine processes in one new consumer group, recording into one new schema."""
    suffix = uuid.uuid4().hex[:8]
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
        "DATABASE_URL": database,
        **SERVICE_SECRETS["kpi_engine"],
        "VR_EVENTS_TOPIC": topic,
        "VR_EVENTS_TOPIC_PARTITIONS": str(partitions),
        "VR_DB_SCHEMA": f"bench_group_{suffix}",
        "VR_CONSUMER_GROUP": f"bench-group-{suffix}",
        "VR_DEAD_LETTER_TOPIC": f"bench.dlq.{suffix}",
        "VR_UPDATES_TOPIC": f"bench.upd.{suffix}",
        "VR_SESSION_TIMEOUT_MS": "6000",
    }
    with contextlib.ExitStack() as stack:
        urls = [stack.enter_context(service_process("kpi_engine", env)) for _ in range(instances)]
        yield EngineGroup(env["VR_DB_SCHEMA"], tuple(urls), tuple(url.pid for url in urls if url.pid))


async def wait_ready(group: EngineGroup) -> None:
    """Every instance ready, then the group settled (its last rebalance assigned every partition)."""
    async with httpx.AsyncClient(timeout=5) as client:
        for url in group.urls:
            for _ in range(300):
                if (await client.get(f"{url}/readyz")).status_code == 200:
                    break
                await asyncio.sleep(0.2)
            else:
                raise RuntimeError(f"{url} did not become ready")
    await asyncio.sleep(SETTLE_S)


async def until_recorded(database: str, group: EngineGroup, expected: int, started: float) -> EngineRun:
    """Poll the group's events table until `expected` are stored; sample lock waits meanwhile."""
    connection = await asyncpg.connect(database)
    cpu_before, busy_before = cpu_by_owner(group.pids), machine_ticks()
    lock_wait_s, last_look = 0.0, time.perf_counter()
    crossed: dict[float, float] = {}  # share of the events → when it was first seen recorded
    try:
        while True:
            stored = await connection.fetchval(f'SELECT count(*) FROM "{group.schema}".events')
            for share in (0.1, 0.9):
                if share not in crossed and stored >= share * expected:
                    crossed[share] = time.perf_counter()
            if stored >= expected:
                break
            waiting = await connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND application_name = $1",
                group.schema,
            )
            now = time.perf_counter()
            lock_wait_s += waiting * (now - last_look)  # connections waiting × time since the last look
            last_look = now
            await asyncio.sleep(LOCK_SAMPLE_S)
        seconds = time.perf_counter() - started
    finally:
        await connection.close()
    cpu_after, busy_after = cpu_by_owner(group.pids), machine_ticks()
    cpu = {owner: (cpu_after.get(owner, 0) - cpu_before.get(owner, 0)) / CLOCK_TICKS for owner in cpu_after}
    busy, total = busy_after[0] - busy_before[0], busy_after[1] - busy_before[1]
    steady = crossed[0.9] - crossed[0.1]
    return EngineRun(expected, seconds, steady, lock_wait_s, cpu, busy / total if total else 0.0)


def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all cores since boot (/proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def cpu_by_owner(engine_pids: Sequence[int]) -> dict[str, int]:
    """CPU ticks (user + system) of the engine processes, PostgreSQL's processes and the broker."""
    ticks: dict[str, int] = {"engine": 0, "postgresql": 0, "broker": 0}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        values = stat[stat.rindex(")") + 2 :].split()
        used = int(values[11]) + int(values[12])
        if int(entry.name) in engine_pids:
            ticks["engine"] += used
        elif name.startswith("postgres"):
            ticks["postgresql"] += used
        elif name.startswith("tansu"):
            ticks["broker"] += used
    return ticks
