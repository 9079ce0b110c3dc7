"""The fault injector: a seeded schedule of SIGKILLs, each against one part of the stack, and the time
each part takes to come back.

The schedule is a pure function of the seed and the duration, so a seed printed by one run gives the
same faults to the next; its parts come in shuffled rounds of all of them, so every part is hit.

Two targets: the local stack of `python -m devstack up` (parts and their pids in the supervisor's
record, `.local/stack.json`) and a `docker compose` project (each part a compose service, killed with
`docker compose kill -s KILL`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from devstack.soak.timing import sleep_until

# What the injector may kill. Prometheus only watches, and a soak is not about it: never killed.
PARTS = ("postgres", "s3", "broker", "ingest", "kpi-engine", "settlement", "gateway")
# docker-compose.yml runs Apache Kafka on its own volume: no separate S3 server to kill there.
COMPOSE_SERVICES = {
    "postgres": "postgres",
    "broker": "kafka",
    "ingest": "ingest",
    "kpi-engine": "kpi-engine",
    "settlement": "settlement",
    "gateway": "gateway",
}
# A part that is not back within this long is a failed recovery (the soak goes on without waiting more).
RECOVERY_BOUND_SECONDS = 180.0


@dataclass(frozen=True)
class Fault:
    at: float  # seconds after the soak's start
    part: str


@dataclass(frozen=True)
class Kill:
    injected: bool
    pid: int | None
    note: str


@dataclass(frozen=True)
class FaultOutcome:
    """One fault as it happened: `recovered_after` is None when the part did not come back in time."""

    planned_at: float
    injected_at: float
    part: str
    pid: int | None
    recovered_after: float | None
    note: str = ""
    injected: bool = True


def schedule(
    seed: int, duration_s: float, every: tuple[float, float], parts: Sequence[str] = PARTS
) -> list[Fault]:
    """Faults `every[0]`–`every[1]` seconds apart (uniform, seeded) until `duration_s`, on the parts in
    rounds: each round a seeded shuffle of all of them, so every part is killed once in each
    `len(parts)` faults (drawn independently, a short run might never kill PostgreSQL). The same
    arguments always give the same list."""
    low, high = every
    if not 0 < low <= high:
        raise ValueError(f"fault interval must satisfy 0 < MIN <= MAX, got {low} {high}")
    if not parts:
        raise ValueError("no part to inject faults into")
    rng = random.Random(seed)
    faults: list[Fault] = []
    this_round: list[str] = []
    at = rng.uniform(low, high)
    while at < duration_s:
        if not this_round:
            this_round = list(parts)
            rng.shuffle(this_round)
        faults.append(Fault(round(at, 3), this_round.pop(0)))
        at += rng.uniform(low, high)
    return faults


class Target(Protocol):
    """Where faults land: kill one part, then say when it is back."""

    parts: tuple[str, ...]

    def kill(self, part: str) -> Kill: ...

    async def recovered(self, part: str, killed_pid: int | None) -> bool: ...

    def restarts(self) -> dict[str, int]: ...


# --- the local stack --------------------------------------------------------------------------------


def read_record(path: Path) -> dict[str, Any]:
    """The supervisor's record (rewritten by rename, so a read sees a whole file); {} while absent."""
    try:
        loaded = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def restarts_in(record_path: Path) -> dict[str, int]:
    """Restarts per part, as the supervisor's record counts them."""
    parts = read_record(record_path).get("parts", {})
    return {name: int(entry.get("restarts", 0)) for name, entry in sorted(parts.items())}


def process_start_ticks(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (start time since boot, in clock ticks), None if there is no such
    process. With the pid it names one process for good: a pid reused later starts at another time."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command (field 2) is in parentheses and may hold spaces: count from the last ')'.
    after_command = stat.rsplit(")", 1)[1].split()
    return int(after_command[19])


def children_of(pid: int) -> list[int]:
    """Direct children of `pid` (what `pgrep -P pid` lists), read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            after_command = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError):
            continue
        if int(after_command[1]) == pid:
            found.append(int(entry.name))
    return found


class DevstackTarget:
    """The parts of `python -m devstack up`, found through the supervisor's record."""

    parts: tuple[str, ...] = PARTS

    def __init__(self, record_path: Path, ready_urls: Sequence[str], http: httpx.AsyncClient) -> None:
        self._record_path, self._ready_urls, self._http = record_path, list(ready_urls), http

    def part_pid(self, part: str) -> tuple[int | None, int | None]:
        entry = read_record(self._record_path).get("parts", {}).get(part) or {}
        pid, started = entry.get("pid"), entry.get("started")
        return (pid if isinstance(pid, int) else None, started if isinstance(started, int) else None)

    def restarts(self) -> dict[str, int]:
        return restarts_in(self._record_path)

    def kill(self, part: str) -> Kill:
        pid, started = self.part_pid(part)
        if pid is None:
            return Kill(False, None, "not in the supervisor's record")
        if started is not None and process_start_ticks(pid) != started:
            return Kill(False, pid, f"pid {pid} is not the recorded process any more")
        # PostgreSQL's pid is the postmaster: its backends would linger without it, so they go too.
        victims = [pid, *children_of(pid)] if part == "postgres" else [pid]
        for victim in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        return Kill(True, pid, f"pid {pid}: SIGKILL to {len(victims)} process(es)")

    async def recovered(self, part: str, killed_pid: int | None) -> bool:
        pid, started = self.part_pid(part)
        if pid is None or pid == killed_pid or process_start_ticks(pid) != started:
            return False
        return await all_ready(self._http, self._ready_urls)


# --- docker compose ---------------------------------------------------------------------------------


class ComposeTarget:
    """The services of docker-compose.yml: `docker compose kill -s KILL <service>`; back when the
    container runs again (a new start time) and the gateway's /readyz answers 200 (the other services
    publish no port)."""

    parts: tuple[str, ...] = tuple(COMPOSE_SERVICES)

    def __init__(
        self,
        compose_file: Path,
        ready_urls: Sequence[str],
        http: httpx.AsyncClient,
        run: Callable[[list[str]], str] | None = None,
    ) -> None:
        self._file, self._ready_urls, self._http = compose_file, list(ready_urls), http
        self._run = run or _run_command
        self._started_before: dict[str, str] = {}

    def _compose(self, *args: str) -> str:
        return self._run(["docker", "compose", "-f", str(self._file), *args])

    def _started_at(self, service: str) -> str:
        container = self._compose("ps", "-q", service).strip()
        if not container:
            return ""
        return self._run(["docker", "inspect", "-f", "{{.State.Running}} {{.State.StartedAt}}", container])

    def restarts(self) -> dict[str, int]:
        return compose_restarts(self._file, self._run)

    def kill(self, part: str) -> Kill:
        service = COMPOSE_SERVICES[part]
        self._started_before[part] = self._started_at(service)
        if not self._started_before[part].startswith("true"):
            return Kill(False, None, f"compose service {service} is not running")
        self._compose("kill", "-s", "KILL", service)
        # Docker does not apply a restart policy to a container stopped by `docker kill` (it counts as
        # stopped by hand), so the injector plays compose's supervisor and starts it again at once.
        self._compose("up", "-d", "--no-deps", service)
        return Kill(True, None, f"docker compose kill -s KILL {service}, then up -d")

    async def recovered(self, part: str, killed_pid: int | None) -> bool:  # noqa: ARG002 - no pids here
        state = await asyncio.to_thread(self._started_at, COMPOSE_SERVICES[part])
        if not state.startswith("true") or state == self._started_before.get(part):
            return False
        return await all_ready(self._http, self._ready_urls)


def compose_restarts(compose_file: Path, run: Callable[[list[str]], str] | None = None) -> dict[str, int]:
    """Docker's restart count of each service's container (the injector's own starts are not in it)."""
    run = run or _run_command
    counts = {}
    for part, service in COMPOSE_SERVICES.items():
        container = run(["docker", "compose", "-f", str(compose_file), "ps", "-q", service]).strip()
        if container:
            counts[part] = int(run(["docker", "inspect", "-f", "{{.RestartCount}}", container]) or 0)
    return counts


def _run_command(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    return done.stdout.strip()


async def all_ready(http: httpx.AsyncClient, urls: Sequence[str]) -> bool:
    for url in urls:
        try:
            answer = await http.get(url, timeout=2)
        except httpx.HTTPError:
            return False
        if answer.status_code != 200:
            return False
    return True


# --- the injector -----------------------------------------------------------------------------------


class Injector:
    """Runs a schedule against a target: waits for each fault's time, kills, waits for recovery. A
    fault due while the previous part is still coming back waits for it: one fault at a time."""

    def __init__(self, target: Target, faults: list[Fault], clock: Callable[[], float]) -> None:
        self._target, self._faults, self._clock = target, faults, clock
        self.outcomes: list[FaultOutcome] = []

    async def run(self, stop: asyncio.Event) -> None:
        for fault in self._faults:
            if not await sleep_until(fault.at, self._clock, stop):
                return
            self.outcomes.append(await self._inject(fault))

    async def _inject(self, fault: Fault) -> FaultOutcome:
        injected_at = self._clock()
        kill = await asyncio.to_thread(self._target.kill, fault.part)
        pid, note = kill.pid, kill.note
        print(f"[soak] {injected_at:7.1f} s  fault: {fault.part} ({note})", flush=True)
        if not kill.injected:
            return FaultOutcome(fault.at, round(injected_at, 1), fault.part, pid, None, note, injected=False)
        started = time.monotonic()
        while time.monotonic() - started < RECOVERY_BOUND_SECONDS:
            await asyncio.sleep(0.2)
            if await self._target.recovered(fault.part, pid):
                took = round(time.monotonic() - started, 1)
                print(f"[soak] {self._clock():7.1f} s  {fault.part} back after {took} s", flush=True)
                return FaultOutcome(fault.at, round(injected_at, 1), fault.part, pid, took, note)
        print(f"[soak] {fault.part} NOT back after {RECOVERY_BOUND_SECONDS:.0f} s", flush=True)
        return FaultOutcome(fault.at, round(injected_at, 1), fault.part, pid, None, note)
