"""Signals sent to `make`'s own process reach `make up` too.

A signal sent to make alone (`kill -INT <make's pid>`, a closed terminal's SIGHUP, a CI job stopping
make) is not passed on: make forwards SIGTERM to its children, but on SIGINT and SIGHUP it only waits
for them, assuming the terminal sent them the same. It does one visible thing first: it puts the
signal's handling back to the default (to die of it once its children are gone), so the signal leaves
its set of caught signals (`SigCgt` in /proc/<pid>/status). The orchestrator watches that set and stops
in order when one of them leaves it — and, bound to make by a death signal, when make is gone.

A signal make was started ignoring (SIGINT of a background job: `make up &`) never reaches it at all;
deploy/devstack/README.md says how to stop such a `make up` (`make down`, or SIGTERM).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from pathlib import Path

_STOPPING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_PR_SET_PDEATHSIG = 1


def caught_signals(pid: int) -> int | None:
    """The bit set of signals `pid` has handlers for (bit n-1 is signal n), None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigCgt:"):
                return int(line.split()[1], 16)
    except OSError:
        return None
    return None


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def _make_above(pid: int, levels: int = 3) -> int | None:
    """The nearest of our ancestors (a shell or `uv run` may stand between) that is make."""
    for _ in range(levels):
        parent = _parent_of(pid)
        if parent is None or parent <= 1:
            return None
        try:
            if Path(f"/proc/{parent}/comm").read_text().strip() in ("make", "gmake"):
                return parent
        except OSError:
            return None
        pid = parent
    return None


class MakeWatch:
    """Watches make when it started us; `signalled()` names the stopping signal make got, if any."""

    def __init__(self) -> None:
        self._make = _make_above(os.getpid())
        caught = caught_signals(self._make) if self._make is not None else None
        # Only the stopping signals make handles now can be seen to leave its set later.
        self._watched = [s for s in _STOPPING if caught is not None and caught >> (s - 1) & 1]

    def signalled(self) -> signal.Signals | None:
        if self._make is None or not self._watched:
            return None
        caught = caught_signals(self._make)
        if caught is None:  # make is gone
            return signal.SIGHUP
        return next((s for s in self._watched if not caught >> (s - 1) & 1), None)


def die_with_parent(signum: int = signal.SIGTERM) -> None:
    """Ask the kernel for `signum` when our parent (make, a shell, a test) ends, however it ends."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
