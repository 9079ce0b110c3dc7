"""Waiting for the KPI engine to consume what ingest accepted, before the stack stops.

The engine says it is caught up (`vr_kpi_consumer_caught_up` 1: its last fetch found nothing and
nothing is left to fetch, so everything fetched was recorded and committed); its lag per partition comes
from fetch responses (the local broker's ListOffsets answer can be short). Two answers in a row must
say so, the second after a fetch that could have found more.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable

POLL_SECONDS = 1.0


def engine_state(metrics_url: str) -> tuple[bool, int] | None:
    """(caught up, messages left) from the engine's /metrics, or None when it does not answer."""
    try:
        with urllib.request.urlopen(metrics_url, timeout=5) as answer:
            text = answer.read().decode()
    except (urllib.error.URLError, OSError):
        return None
    caught_up, left = False, 0
    for line in text.splitlines():
        if line.startswith("vr_kpi_consumer_caught_up "):
            caught_up = float(line.rsplit(" ", 1)[1]) == 1
        elif line.startswith("vr_kpi_consumer_lag_messages{"):
            left += int(float(line.rsplit(" ", 1)[1]))
    return caught_up, left


def wait_until_drained(metrics_url: str, timeout_s: float, say: Callable[[str], None]) -> bool:
    """True once the engine is caught up twice in a row; False when the bound passed or it is gone."""
    deadline = time.monotonic() + timeout_s
    confirmed = 0
    while time.monotonic() < deadline:
        state = engine_state(metrics_url)
        if state is None:
            say("the KPI engine does not answer; it will resume from its committed offsets next time")
            return False
        caught_up, left = state
        confirmed = confirmed + 1 if caught_up and left == 0 else 0
        if confirmed >= 2:
            say("the KPI engine has counted every accepted event")
            return True
        say(f"the KPI engine is counting accepted events: {left:,} to go")
        time.sleep(POLL_SECONDS)
    say(f"stopping after {timeout_s:.0f} s of draining; the rest is counted at the next start")
    return False
