"""Supervision of the local stack: a part that exits when nobody asked it to is reported and started
again, with backoff, as docker compose's restart policies, systemd and Kubernetes do.

What is reported: which part, how it ended (`exit 3`, `killed by SIGKILL`) and the last lines of its
log. Restarts follow the stack's order (PostgreSQL, the S3 server, the broker, the services), so when
the broker's storage and the broker both died, the storage comes back first. What depends on a
restarted part reconnects by itself (the services' database pools and Kafka clients). A part that keeps
failing — `RESTART_BUDGET` exits within `BUDGET_WINDOW_S` — stops the whole stack with a message rather
than a loop (deploy/devstack/README.md, "Supervision").
"""

from __future__ import annotations

import subprocess
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from devstack.processes import exit_status

RESTART_BUDGET = 5
BUDGET_WINDOW_S = 120.0
LOG_LINES_SHOWN = 10


class Part(Protocol):
    """A process of the stack (LocalPostgres, LocalS3, LocalBroker, LocalService, LocalPrometheus)."""

    name: str
    process: subprocess.Popen[bytes] | None

    @property
    def log_path(self) -> Path | None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class GaveUp(Exception):
    """A part failed too often: the stack stops (the message says which and where its log is)."""


@dataclass
class _Watch:
    part: Part
    exits: deque[float] = field(default_factory=deque)  # monotonic times of unexpected exits
    restart_at: float | None = None  # when a restart is due; None while it runs
    restarted: int = 0  # restarts that succeeded, since the stack started
    given_up: bool = False  # over its budget: no longer watched nor restarted

    def backoff_s(self) -> float:
        """0.5 s after a first exit in the window, then doubling (1, 2, 4 s before the budget is out)."""
        return 0.5 * 2.0 ** (len(self.exits) - 1)


class Supervisor:
    def __init__(
        self,
        parts: Sequence[Part],
        say: Callable[[str], None],
        on_start: Callable[[Part], None],
        clock: Callable[[], float] = time.monotonic,
        optional: Sequence[str] = ("prometheus",),
    ) -> None:
        """`parts` in the stack's order; `on_start` is told of every (re)start (the record of pids);
        `optional`: parts the stack runs on without when they keep failing."""
        self._watches = [_Watch(part) for part in parts]
        self._say, self._on_start, self._clock, self._optional = say, on_start, clock, optional

    def watch(self, part: Part) -> None:
        """Supervise one more part (started after those already watched)."""
        self._watches.append(_Watch(part))

    @property
    def restarts(self) -> dict[str, int]:
        return {w.part.name: w.restarted for w in self._watches}

    def check(self) -> None:
        """One round: notice exits, then run the restarts that are due, in the stack's order."""
        for watch in self._watches:
            self._notice_exit(watch)
        for watch in self._watches:
            if watch.restart_at is not None and self._clock() >= watch.restart_at:
                self._restart(watch)

    def bring_back(self, names: Sequence[str]) -> list[str]:
        """Restart at once (no backoff) whichever of `names` is down — what an orderly stop needs to
        drain; returns the names that could not be brought back. Never raises: a stop goes on."""
        failed = []
        for watch in self._watches:
            if watch.part.name not in names:
                continue
            try:
                self._notice_exit(watch)
                if watch.restart_at is not None:
                    watch.restart_at = self._clock()
                    self._restart(watch)
            except GaveUp:
                pass
            if watch.given_up or watch.restart_at is not None:
                failed.append(watch.part.name)
        return failed

    def _notice_exit(self, watch: _Watch) -> None:
        process = watch.part.process
        if watch.given_up or process is None or watch.restart_at is not None or process.poll() is None:
            return
        name = watch.part.name
        self._say(f"{name} exited unexpectedly ({exit_status(process.returncode)}, pid {process.pid})")
        for line in last_lines(watch.part.log_path, LOG_LINES_SHOWN):
            self._say(f"  | {line}")
        self._failed(watch, f"{name} exited {{count}} times within {BUDGET_WINDOW_S:.0f} s")
        if not watch.given_up:
            self._say(f"restarting {name} in {watch.backoff_s():.1f} s")

    def _failed(self, watch: _Watch, reason: str) -> None:
        """One more failure of `watch` (an exit, a failed start): its restart is scheduled with backoff,
        or, over the budget, it is given up — the stack stops, or runs on without an optional part."""
        now = self._clock()
        watch.exits.append(now)
        while watch.exits and watch.exits[0] < now - BUDGET_WINDOW_S:
            watch.exits.popleft()
        if len(watch.exits) >= RESTART_BUDGET:
            watch.given_up, watch.restart_at = True, None
            message = reason.format(count=len(watch.exits))
            if watch.part.name in self._optional:
                self._say(
                    f"{message}; left stopped, the stack runs on without it (its log: {watch.part.log_path})"
                )
                return
            raise GaveUp(
                f"{message}; stopping the stack instead of trying again (its log: {watch.part.log_path})"
            )
        watch.restart_at = now + watch.backoff_s()

    def _restart(self, watch: _Watch) -> None:
        started = self._clock()
        try:
            watch.part.stop()  # whatever of it is left (the postmaster's children, a half-open log)
            watch.part.start()
        except Exception as exc:  # any failure to start is one more failure, with backoff
            self._failed(watch, f"{watch.part.name} failed {{count}} times, the last start with: {exc}")
            if not watch.given_up:
                self._say(f"{watch.part.name} did not start ({exc}); next try in {watch.backoff_s():.1f} s")
            return
        watch.restart_at, watch.restarted = None, watch.restarted + 1
        self._on_start(watch.part)
        pid = watch.part.process.pid if watch.part.process else "?"
        self._say(f"{watch.part.name} restarted (pid {pid}, {self._clock() - started:.1f} s)")


def last_lines(path: Path | None, count: int) -> list[str]:
    """The last `count` lines of a log (its last 64 KiB are enough), for the report of an exit."""
    if path is None or not path.exists():
        return []
    with path.open("rb") as log:
        log.seek(0, 2)
        log.seek(max(log.tell() - 65_536, 0))
        text = log.read().decode("utf-8", "replace")
    return [line for line in text.splitlines() if line.strip()][-count:]
