"""Waiting for a condition in asynchronous tests, with a bound and a clear failure."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from vr_shared.metrics import render_metrics

T = TypeVar("T")


async def eventually(
    fetch: Callable[[], Awaitable[T]], check: Callable[[T], bool], timeout_s: float = 30
) -> T:
    """Fetch until `check` accepts the result; the last result is shown if it never does."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        result = await fetch()
        if check(result):
            return result
        assert asyncio.get_running_loop().time() < deadline, f"not reached in time: {result}"
        await asyncio.sleep(0.2)


async def wait_until(condition: Callable[[], Awaitable[bool]], timeout_s: float = 90) -> None:
    await eventually(condition, bool, timeout_s)


def metric_value(exposition: str, sample: str) -> float:
    """The value of one sample (name and labels exactly as exposed) in a /metrics text; 0 if absent."""
    for line in exposition.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def exposed_metrics() -> str:
    """What this process's /metrics would show: the services run in-process in most tests, sharing the
    registry (their /metrics is on a port of its own, which an in-process app does not open)."""
    return render_metrics()[0].decode()
