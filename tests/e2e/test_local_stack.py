"""`make up` as a user meets it (deploy/devstack/README.md): run by make, signalled through make's own
process (SIGINT, SIGHUP, SIGTERM), its parts and the orchestrator itself killed with SIGKILL, a stop
that cannot drain, a port taken — one stack folder through five runs, each step named in the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from devstack.ports import port_is_free
from devstack.services import answers_ready
from devstack.stack import PORT_VARIABLES, SERVICES, STOP_MARGIN_S
from tests.e2e.test_nothing_accepted_is_lost import BATCH, Pipeline, _tenant, claims, counted
from tests.support.local_stack import UP, MakeUp, alive, descendants, listening_sockets, stack_ports
from tests.support.waiting import eventually

pytestmark = pytest.mark.fault

DRAIN_BOUND_S = 120  # VR_DRAIN_TIMEOUT_SECONDS of these stacks
STOP_ORDER = [
    "stopping gateway",
    "stopping ingest",
    "stopping kpi-engine",
    "stopping broker",
    "stopping postgres",
]
SERVICE_PORTS = ("VR_INGEST_PORT", "VR_KPI_ENGINE_PORT", "VR_SETTLEMENT_PORT", "VR_GATEWAY_PORT")


@contextlib.contextmanager
def taken(port: int, timeout_s: float = 5) -> Iterator[socket.socket]:
    """Another program listening on `port` (bound as soon as it is free)."""
    deadline = time.monotonic() + timeout_s
    while True:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past the killed one's TIME_WAITs
        try:
            sock.bind(("127.0.0.1", port))
            break
        except OSError:
            sock.close()
            assert time.monotonic() < deadline, f"port {port} never came free"
            time.sleep(0.005)
    sock.listen()
    try:
        yield sock
    finally:
        sock.close()


def _stack_pids(up: MakeUp) -> list[int]:
    record = up.record()
    pids = [int(entry["pid"]) for entry in record.values()]
    return pids + [child for pid in pids for child in descendants(pid)]


def _assert_stopped_in_order(output: str, pids: list[int], order: list[str] = STOP_ORDER) -> None:
    positions = [output.rfind(line) for line in order]
    assert all(p >= 0 for p in positions) and positions == sorted(positions), output[-3000:]
    survivors = [pid for pid in pids if alive(pid)]
    assert not survivors, f"still running after the stop: {survivors}"


def _all_ready(up: MakeUp) -> bool:
    return all(answers_ready(f"http://127.0.0.1:{up.ports[variable]}") for variable in SERVICE_PORTS)


async def _recovered(up: MakeUp, part: str) -> None:
    """SIGKILL `part`; the supervisor restarts it and every service answers /readyz 200 again."""
    killed = up.pid(part)
    os.kill(killed, signal.SIGKILL)
    await asyncio.to_thread(up.wait_for, f"{part} restarted (pid ", 60)
    assert up.pid(part) != killed
    await eventually(lambda: asyncio.to_thread(_all_ready, up), bool, 90)


async def _burst(up: MakeUp, pipeline_key: str, tag: str, count: int) -> None:
    async with httpx.AsyncClient(base_url=up.gateway, timeout=60) as client:
        pipeline = Pipeline(client, pipeline_key)
        events = claims(tag, count)
        pending = iter([events[i : i + BATCH] for i in range(0, len(events), BATCH)])

        async def send_all() -> None:
            for batch in pending:
                await pipeline.send_until_accepted(batch)

        await asyncio.gather(*(send_all() for _ in range(4)))  # four requests in flight, as `vr` sends
    assert len(pipeline.accepted) == count


async def _counted(up: MakeUp, ops_key: str, expected: int) -> None:
    async with httpx.AsyncClient(base_url=up.gateway, timeout=60) as client:
        assert await eventually(lambda: counted(client, ops_key), lambda n: n == expected, 180) == expected


async def test_make_up_as_a_user_meets_it_signals_crashes_and_a_stop_it_cannot_drain(tmp_path: Path) -> None:
    root, ports = tmp_path / "stack", stack_ports()
    bound = {"VR_DRAIN_TIMEOUT_SECONDS": str(DRAIN_BOUND_S)}
    runs = {label: MakeUp(root, ports, bound, label) for label in ("a", "b", "c", "blocked", "d")}
    try:
        # A: every listener on loopback; fsync on; a burst, then Ctrl-C at once (SIGINT to make): the
        # engine, far behind, is left to count it all before the rest stops.
        a = runs["a"]
        await asyncio.to_thread(a.start)
        sockets = listening_sockets(_stack_pids(a))
        assert {address for address, _ in sockets} == {"127.0.0.1"}, sockets
        without = set() if "prometheus" in a.record() else {"VR_PROMETHEUS_PORT"}
        assert {port for _, port in sockets} == {p for v, p in ports.items() if v not in without}, sockets
        database = await asyncpg.connect(
            f"postgresql://postgres@127.0.0.1:{ports['VR_LOCAL_PG_PORT']}/postgres"
        )
        try:  # a commit is on disk before it is acknowledged
            assert await database.fetchval("SHOW fsync") == "on"
        finally:
            await database.close()
        async with httpx.AsyncClient(base_url=a.gateway, timeout=60) as client:
            pipeline_key, ops_key = await _tenant(client, a.admin_key, "burst-health")
        await _burst(a, pipeline_key, "burst", 20_000)
        pids = _stack_pids(a)
        a.signal_make(signal.SIGINT)
        code, _ = await asyncio.to_thread(a.wait_stopped, DRAIN_BOUND_S + STOP_MARGIN_S)
        assert code == -signal.SIGINT, a.output[-3000:]  # make, having waited for the stop, dies of it
        assert "make got SIGINT" in a.output
        assert "the KPI engine has counted every accepted event" in a.output
        _assert_stopped_in_order(a.output, pids)

        # B: all counted; PostgreSQL, then the broker, killed under it: restarted, and every service
        # recovers by itself (its database pool, its Kafka clients), as new events counted show. Then a
        # burst, the broker killed and its port taken so it cannot come back, and a closed terminal
        # (SIGHUP to make): the stop says what is unconfirmed and where it is safe, never a number it
        # cannot know, within the stated bound, and leaves nothing running.
        b = runs["b"]
        await asyncio.to_thread(b.start)
        assert "stopped what an earlier make up left running" not in b.output
        await _counted(b, ops_key, 20_000)
        async with httpx.AsyncClient(base_url=b.gateway, timeout=60) as client:
            for part, tag in (("postgres", "after-db"), ("broker", "after-broker")):
                await _recovered(b, part)
                await Pipeline(client, pipeline_key).send_until_accepted(claims(tag, 10))
        await _counted(b, ops_key, 20_020)
        await _burst(b, pipeline_key, "late-burst", 5_000)
        pids = _stack_pids(b)
        os.kill(b.pid("broker"), signal.SIGKILL)
        killed_at = len(b.output)
        with taken(ports["VR_LOCAL_BROKER_PORT"]):
            await asyncio.to_thread(b.wait_for, "broker did not start (port", 30)
            b.signal_make(signal.SIGHUP)
            code, took = await asyncio.to_thread(b.wait_stopped, DRAIN_BOUND_S + STOP_MARGIN_S)
        stopped = b.output[killed_at:]
        assert code == -signal.SIGHUP, stopped
        assert "make got SIGHUP" in stopped
        assert (
            "could not start broker again to finish counting; what the KPI engine has not counted yet is safe"
            " in the broker's durable storage (.local/s3) and is counted at the next start"
        ) in stopped
        assert "to go" not in stopped and "has counted every" not in stopped, stopped
        assert took < STOP_MARGIN_S, took
        _assert_stopped_in_order(stopped, pids, [line for line in STOP_ORDER if "broker" not in line])

        # C: the next make up counts everything. Then the orchestrator itself SIGKILLed (OOM, a closed
        # CI job: no stop in order): no part survives it.
        c = runs["c"]
        await asyncio.to_thread(c.start)
        await _counted(c, ops_key, 25_020)
        pids = _stack_pids(c)
        os.kill(c.pid("orchestrator"), signal.SIGKILL)
        await asyncio.to_thread(c.wait_stopped, 30)
        survivors = await eventually(
            lambda: asyncio.to_thread(lambda: [pid for pid in pids if alive(pid)]), lambda left: not left, 20
        )
        assert not survivors, "parts outlived their orchestrator"
        taken_ports = await eventually(
            lambda: asyncio.to_thread(lambda: [v for v, p in ports.items() if not port_is_free(p)]),
            lambda left: not left,
            20,
        )
        assert not taken_ports

        # A service's port taken by another program: named with the variable that moves it, before
        # anything is said to be up, and nothing is left running.
        blocked, variable = runs["blocked"], "VR_SETTLEMENT_METRICS_PORT"
        with taken(ports[variable]):
            await asyncio.to_thread(blocked.start, wait_up=False)
            code, _ = await asyncio.to_thread(blocked.wait_stopped, 180)
        assert code == 2  # make: the recipe failed
        assert (
            f"port {ports[variable]} for settlement is taken; set {variable} to another port"
            in blocked.output
        )
        assert UP not in blocked.output
        assert all(port_is_free(port) for v, port in ports.items() if v != variable)

        # D: SIGTERM to make (a CI job cancelled) stops it in order too.
        d = runs["d"]
        await asyncio.to_thread(d.start)
        pids = _stack_pids(d)
        d.signal_make(signal.SIGTERM)
        code, _ = await asyncio.to_thread(d.wait_stopped, DRAIN_BOUND_S + STOP_MARGIN_S)
        assert code == -signal.SIGTERM
        _assert_stopped_in_order(d.output, pids)
    finally:
        for up in runs.values():
            up.kill_all()


def test_every_port_of_the_stack_is_movable() -> None:
    """Each port the stack binds has its variable in the one table, with a default of its own (the
    listener test above finds no port outside it)."""
    services = {v for spec in SERVICES for v in (spec.port_variable, spec.metrics_port_variable)}
    others = {"VR_LOCAL_PG_PORT", "VR_LOCAL_S3_PORT", "VR_LOCAL_BROKER_PORT", "VR_PROMETHEUS_PORT"}
    assert services | others == set(PORT_VARIABLES)
    assert len(set(PORT_VARIABLES.values())) == len(PORT_VARIABLES) == 12
