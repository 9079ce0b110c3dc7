"""`make up` as a user meets it (deploy/devstack/README.md): run by make, signalled through make's own
process, its parts killed with SIGKILL.

1. A burst accepted, then the broker killed and its port taken by another program so it cannot come
   back; Ctrl-C (SIGINT to make): the stop says plainly what is unconfirmed and where it is safe, never
   a number it cannot know, ends within the stated bound, and leaves nothing running. The next `make up`
   counts every accepted event; PostgreSQL and the broker killed under it are restarted and every
   service recovers by itself; SIGHUP to make stops it in order. Every listener is on 127.0.0.1.
2. The orchestrator itself killed with SIGKILL: no part survives it. A service's port taken: named
   with the variable that moves it, before anything is said to be up. SIGTERM to make stops it in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from devstack.ports import port_is_free
from devstack.stack import PORT_VARIABLES, STOP_MARGIN_S
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
    for variable in SERVICE_PORTS:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{up.ports[variable]}/readyz", timeout=5) as answer:
                if answer.status != 200:
                    return False
        except (urllib.error.URLError, OSError):
            return False
    return True


async def _recovered(up: MakeUp, part: str) -> None:
    """SIGKILL `part`; the supervisor restarts it and every service answers /readyz 200 again."""
    killed = up.pid(part)
    os.kill(killed, signal.SIGKILL)
    await asyncio.to_thread(up.wait_for, f"{part} restarted (pid ", 60)
    assert up.pid(part) != killed
    await eventually(lambda: asyncio.to_thread(_all_ready, up), bool, 90)


async def test_broker_killed_then_ctrl_c_stops_honestly_within_the_bound_and_the_next_make_up_counts_it_all(
    tmp_path: Path,
) -> None:
    root, ports = tmp_path / "stack", stack_ports()
    bound = {"VR_DRAIN_TIMEOUT_SECONDS": str(DRAIN_BOUND_S)}
    first, second = MakeUp(root, ports, bound, "first"), MakeUp(root, ports, bound, "second")
    events = claims("burst", 20_000)
    try:
        await asyncio.to_thread(first.start)
        # Every listener of every part (PostgreSQL's and the S3 server's helpers included) on loopback.
        sockets = listening_sockets(_stack_pids(first))
        assert {address for address, _ in sockets} == {"127.0.0.1"}, sockets
        prometheus = ports["VR_PROMETHEUS_PORT"] if "prometheus" in first.record() else None
        expected = {p for v, p in ports.items() if v != "VR_PROMETHEUS_PORT"} | ({prometheus} - {None})
        assert {port for _, port in sockets} == expected, sockets
        database = await asyncpg.connect(
            f"postgresql://postgres@127.0.0.1:{ports['VR_LOCAL_PG_PORT']}/postgres"
        )
        try:  # a commit is on disk before it is acknowledged
            assert await database.fetchval("SHOW fsync") == "on"
        finally:
            await database.close()
        async with httpx.AsyncClient(base_url=first.gateway, timeout=60) as client:
            pipeline_key, ops_key = await _tenant(client, first.admin_key, "burst-health")
            pipeline = Pipeline(client, pipeline_key)
            pending = iter([events[i : i + BATCH] for i in range(0, len(events), BATCH)])

            async def send_all() -> None:
                for batch in pending:
                    await pipeline.send_until_accepted(batch)

            await asyncio.gather(*(send_all() for _ in range(4)))  # four requests in flight, as `vr` sends
        assert len(pipeline.accepted) == 20_000
        pids = _stack_pids(first)
        os.kill(first.pid("broker"), signal.SIGKILL)
        killed_at = len(first.output)
        with taken(ports["VR_LOCAL_BROKER_PORT"]):  # so it cannot come back
            await asyncio.to_thread(first.wait_for, "broker did not start (port", 30)
            first.signal_make(signal.SIGINT)
            code, took = await asyncio.to_thread(first.wait_stopped, DRAIN_BOUND_S + STOP_MARGIN_S)
        stopped = first.output[killed_at:]
        assert code == -signal.SIGINT, stopped  # make, having waited for the orderly stop, dies of it
        assert "make got SIGINT" in stopped
        assert (
            "could not start broker again to finish counting; what the KPI engine has not counted yet is safe"
            " in the broker's durable storage (.local/s3) and is counted at the next start"
        ) in stopped
        assert "to go" not in stopped and "has counted every" not in stopped, stopped
        assert took < STOP_MARGIN_S, took
        _assert_stopped_in_order(stopped, pids, [line for line in STOP_ORDER if "broker" not in line])

        await asyncio.to_thread(second.start)
        assert "stopped what an earlier make up left running" not in second.output
        async with httpx.AsyncClient(base_url=second.gateway, timeout=60) as client:
            assert await eventually(lambda: counted(client, ops_key), lambda n: n == 20_000, 180) == 20_000
            # PostgreSQL, then the broker, killed under the running stack: restarted, and every service
            # recovers by itself (its database pool, its Kafka clients) — proven by new events counted.
            for part, tag in (("postgres", "after-db"), ("broker", "after-broker")):
                await _recovered(second, part)
                await Pipeline(client, pipeline_key).send_until_accepted(claims(tag, 10))
            assert await eventually(lambda: counted(client, ops_key), lambda n: n == 20_020, 120) == 20_020
        pids = _stack_pids(second)
        second.signal_make(signal.SIGHUP)  # a closed terminal
        code, _ = await asyncio.to_thread(second.wait_stopped, DRAIN_BOUND_S + STOP_MARGIN_S)
        assert code == -signal.SIGHUP
        assert "make got SIGHUP" in second.output
        assert "the KPI engine has counted every accepted event" in second.output
        _assert_stopped_in_order(second.output, pids)
    finally:
        first.kill_all()
        second.kill_all()


async def test_no_part_outlives_a_killed_make_up_and_a_taken_port_is_named_before_up(tmp_path: Path) -> None:
    root, ports = tmp_path / "stack", stack_ports()
    killed, blocked, last = (MakeUp(root, ports, label=label) for label in ("killed", "blocked", "last"))
    try:
        await asyncio.to_thread(killed.start)
        pids = _stack_pids(killed)
        os.kill(killed.pid("orchestrator"), signal.SIGKILL)  # OOM, a closed CI job: no stop in order
        await asyncio.to_thread(killed.wait_stopped, 30)
        survivors = await eventually(
            lambda: asyncio.to_thread(lambda: [pid for pid in pids if alive(pid)]), lambda left: not left, 20
        )
        assert not survivors, "parts outlived their orchestrator"
        assert all(port_is_free(port) for port in ports.values())

        variable = "VR_SETTLEMENT_METRICS_PORT"
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

        await asyncio.to_thread(last.start)
        pids = _stack_pids(last)
        last.signal_make(signal.SIGTERM)
        code, _ = await asyncio.to_thread(last.wait_stopped, 300)
        assert code == -signal.SIGTERM
        _assert_stopped_in_order(last.output, pids)
    finally:
        for up in (killed, blocked, last):
            up.kill_all()


def test_every_port_of_the_stack_is_movable() -> None:
    """Each port the stack binds has its variable (the listener test above finds no other)."""
    assert len(set(PORT_VARIABLES.values())) == len(PORT_VARIABLES) == 12
