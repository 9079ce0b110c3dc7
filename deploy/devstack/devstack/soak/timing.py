"""Waiting in the soak's tasks: until a time, or until the soak is told to stop, whichever is first."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def sleep_until(at: float, now: Callable[[], float], stop: asyncio.Event) -> bool:
    """Wait until `now()` reaches `at`; False when `stop` came first (or was set already)."""
    wait = at - now()
    if wait <= 0:
        return not stop.is_set()
    try:
        await asyncio.wait_for(stop.wait(), wait)
    except TimeoutError:
        return True
    return False
