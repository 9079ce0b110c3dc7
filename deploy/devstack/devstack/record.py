"""What `make up` started, kept in `.local/stack.json`, so that nothing of it outlives it unnoticed.

Every part is bound to the orchestrator by a death signal (devstack.processes.spawn); the record is the
second line of defence, for what the kernel cannot do (a part between fork and its pact, a platform
without one). Each entry is a pid *and* its start time, so a pid the system gave to another program
since is never touched. The next `make up` reads it: if the orchestrator it names still runs, it says
so and starts nothing; otherwise it stops the leftovers it names — its own, and only its own — and
says which. `make down` uses the same record.

The orchestrator holds `.local/stack.lock` (flock) for its whole life — the kernel releases it however
the process ends — so two `make up` of one folder never run together, and whoever gets the lock knows
that nothing else of that folder's stack is being started. Only then is a postmaster that serves our
data folder (its lock file, `pgdata/postmaster.pid`) ours to stop, whether or not the record caught it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from devstack.processes import start_time

STOP_GRACE_S = 15.0


@dataclass(frozen=True)
class Recorded:
    name: str
    pid: int
    started: int  # /proc/<pid>/stat start time: the pid and this name one process

    def alive(self) -> bool:
        return start_time(self.pid) == self.started


class AlreadyRunning(Exception):
    pass


class StackRecord:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "stack.json"
        self._lock_path = state_dir / "stack.lock"
        self._pgdata = state_dir / "pgdata"
        self._lock: int | None = None
        self.stop_bound_s: float | None = None  # written with the record: how long a stop may take

    def claim(self) -> None:
        """Hold this folder's lock for the life of this process, or AlreadyRunning naming who holds it."""
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            orchestrator, _ = self.read()
            holder = f" (pid {orchestrator.pid})" if orchestrator is not None else ""
            raise AlreadyRunning(f"make up already runs for this folder{holder}") from None
        self._lock = descriptor

    @property
    def claimed(self) -> bool:
        return self._lock is not None

    def held_elsewhere(self) -> bool:
        """Another process holds this folder's lock (a `make up` runs or is starting)."""
        if self.claimed:
            return False  # we do (a second open of the file would conflict with our own lock)
        try:
            descriptor = os.open(self._lock_path, os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(descriptor)
        return False

    def read(self) -> tuple[Recorded | None, list[Recorded]]:
        """(the orchestrator, its parts) as last written; nothing when there is no readable record."""
        try:
            data = json.loads(self.path.read_text())
            orchestrator = _recorded("orchestrator", data.get("orchestrator"))
            parts = [_recorded(name, entry) for name, entry in data.get("parts", {}).items()]
            bound = data.get("stop_bound_s")
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return None, []
        self.stop_bound_s = float(bound) if isinstance(bound, int | float) else None
        return orchestrator, [p for p in parts if p is not None]

    def write(self, parts: dict[str, int], restarts: dict[str, int]) -> None:
        """This process as the orchestrator and `parts` (name → pid, and how often each was restarted),
        replaced at once (rename)."""
        entries = {
            name: {"pid": pid, "started": start_time(pid), "restarts": restarts.get(name, 0)}
            for name, pid in parts.items()
        }
        me = os.getpid()
        body = {
            "orchestrator": {"pid": me, "started": start_time(me)},
            "stop_bound_s": self.stop_bound_s,
            "parts": entries,
        }
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(body, indent=2))
        temporary.replace(self.path)

    def running_orchestrator(self) -> Recorded | None:
        """The orchestrator of this folder while it runs (it holds the lock), as recorded."""
        orchestrator, _ = self.read()
        if orchestrator is None or not orchestrator.alive() or not self.held_elsewhere():
            return None
        return orchestrator

    def leftovers(self) -> list[Recorded]:
        """Parts of an earlier `make up` still running: in the record, or serving our data folder."""
        _, parts = self.read()
        alive = [p for p in parts if p.alive()]
        postmaster = self._postmaster()
        if postmaster is not None and all(p.pid != postmaster.pid for p in alive):
            alive.append(postmaster)
        return alive

    def stop_leftovers(self) -> list[Recorded]:
        """Stop each leftover (SIGTERM — SIGINT for PostgreSQL, its fast shutdown — then SIGKILL after
        STOP_GRACE_S); returns what was stopped."""
        if self.held_elsewhere():
            return []  # a make up of this folder runs or is starting: nothing here is a leftover
        leftovers = self.leftovers()
        for part in leftovers:
            _signal(part, signal.SIGINT if part.name == "postgres" else signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline and any(p.alive() for p in leftovers):
            time.sleep(0.1)
        for part in leftovers:
            if part.alive():
                _signal(part, signal.SIGKILL)
        if not self.claimed:  # `make down`; the next make up rewrites it
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        return leftovers

    def forget(self) -> None:
        """The record removed — only by the process holding the lock (never another `make up`'s)."""
        if self.claimed:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def _postmaster(self) -> Recorded | None:
        """The postmaster named by our data folder's lock file, if it runs and serves that folder."""
        try:
            pid = int((self._pgdata / "postmaster.pid").read_text().split()[0])
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            return None
        started = start_time(pid)
        if started is None or str(self._pgdata).encode() not in command:
            return None
        return Recorded("postgres", pid, started)


def _recorded(name: str, entry: object) -> Recorded | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("pid"), int):
        return None
    started = entry.get("started")
    return Recorded(name, entry["pid"], started) if isinstance(started, int) else None


def _signal(part: Recorded, signum: int) -> None:
    """The part's whole process group (each part leads a session of its own), then the part itself."""
    if not part.alive():
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(part.pid) == part.pid:
            os.killpg(part.pid, signum)
        else:
            os.kill(part.pid, signum)
