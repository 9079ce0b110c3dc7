"""Waiting for the KPI engine to consume what ingest accepted, before the stack stops.

The engine says it is caught up (`vr_kpi_consumer_caught_up` 1: a fetch answered in the last few
seconds found nothing and nothing is left to fetch, so everything fetched was recorded and committed);
its lag per partition comes from fetch responses (the local broker's ListOffsets answer can be short),
and `vr_kpi_consumer_last_fetch_timestamp_seconds` says when the oldest of them was answered. Two
answers in a row, from two different fetches, must say caught up, each from a fetch answered after
ingest stopped (so nothing accepted can be missing from what was fetched). A number of events to go is
shown only while fetches are answered: a lag read from an old answer is not known to be true, and is
not printed. When no fetch is answered for `STALL_S`, the drain stops and says plainly what is
unconfirmed and where it is safe.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

POLL_SECONDS = 1.0
FRESH_S = 10.0  # a lag from a fetch answered longer ago than this is not shown
ANSWER_GRACE_S = 15.0  # an engine just brought back may take this long to serve its metrics
STALL_S = 45.0  # no fetch answered for this long: stop waiting (a restarted engine joins in 10–20 s)


@dataclass(frozen=True)
class EngineState:
    caught_up: bool
    left: int
    last_fetch: float | None  # epoch seconds of the oldest partition's last answered fetch

    def fresh(self, now: float) -> bool:
        return self.last_fetch is not None and now - self.last_fetch <= FRESH_S


def engine_state(metrics_url: str) -> EngineState | None:
    """The engine's drain state from its /metrics, or None when it does not answer."""
    try:
        with urllib.request.urlopen(metrics_url, timeout=5) as answer:
            text = answer.read().decode()
    except (urllib.error.URLError, OSError):
        return None
    caught_up, left, last_fetch = False, 0, None
    for line in text.splitlines():
        if line.startswith("vr_kpi_consumer_caught_up "):
            caught_up = float(line.rsplit(" ", 1)[1]) == 1
        elif line.startswith("vr_kpi_consumer_lag_messages{"):
            left += int(float(line.rsplit(" ", 1)[1]))
        elif line.startswith("vr_kpi_consumer_last_fetch_timestamp_seconds "):
            last_fetch = float(line.rsplit(" ", 1)[1]) or None
    return EngineState(caught_up, left, last_fetch)


UNCONFIRMED = (
    "what the KPI engine has not counted yet is safe in the broker's durable storage (.local/s3) and is"
    " counted at the next start"
)


def wait_until_drained(
    metrics_url: str,
    timeout_s: float,
    say: Callable[[str], None],
    since: float,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """True once the engine is caught up twice in a row, each time from a fetch answered after `since`
    (when the last event was accepted: ingest had stopped); False when the bound passed, it does not
    answer for ANSWER_GRACE_S, or no fetch of it has been answered for STALL_S."""
    started = clock()
    confirmed, answered, heard = 0, started, started
    confirming: float | None = None  # the fetch the last confirmation came from
    while clock() < started + timeout_s:
        state, now = engine_state(metrics_url), clock()
        if state is None:
            if now - heard >= ANSWER_GRACE_S:
                say(f"the KPI engine does not answer; {UNCONFIRMED}")
                return False
            sleep(POLL_SECONDS)  # just started again: its metrics port may not listen yet
            continue
        heard = now
        fresh = state.fresh(now)
        if fresh:
            answered = now
        after = state.last_fetch is not None and state.last_fetch >= since
        if not (state.caught_up and state.left == 0 and fresh and after):
            confirmed, confirming = 0, None
        elif state.last_fetch != confirming:  # the same snapshot read twice confirms once
            confirmed, confirming = confirmed + 1, state.last_fetch
        if confirmed >= 2:
            say("the KPI engine has counted every accepted event")
            return True
        if now - answered >= STALL_S:
            say(f"the KPI engine has had no answer from the broker for {now - answered:.0f} s; {UNCONFIRMED}")
            return False
        if fresh:
            say(f"the KPI engine is counting accepted events: {state.left:,} to go")
        else:
            say("the KPI engine is waiting for the broker; how many events are left is not known yet")
        sleep(POLL_SECONDS)
    say(f"stopping after {timeout_s:.0f} s of draining; {UNCONFIRMED}")
    return False
