"""The stack under test: `python -m devstack --root ROOT up` as a process tree of its own, on free ports,
its output in ROOT/up.log; stopped with SIGINT (the orderly stop of `make up`)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from devstack.ports import free_port
from devstack.stack import PORT_VARIABLES

UP_LINE = "Value Realization is up."
MARKER = ".soak-root"  # only a folder the soak made itself is ever wiped
STOP_BOUND_SECONDS = 120.0
# Settlement for a soak: webhook retries every 10 s for 20 minutes instead of over a day (a receiver
# down for half a minute is delivered to when it is back), and periods looked at every 5 s.
SOAK_ENVIRONMENT = {
    "VR_WEBHOOK_RETRY_SCHEDULE": ",".join(["1", "2", "4", *["10"] * 117]),
    "VR_WEBHOOK_POLL_INTERVAL_SECONDS": "0.5",
    "VR_BLOCKED_CHECK_INTERVAL_SECONDS": "5",
}
READY_SERVICES = ("VR_INGEST_PORT", "VR_KPI_ENGINE_PORT", "VR_SETTLEMENT_PORT", "VR_GATEWAY_PORT")


class StackFailed(Exception):
    pass


def stop_leftovers(root: Path) -> None:
    """`python -m devstack --root ROOT down`: a stack an earlier soak left running on this folder (or
    its parts) stopped before the folder it runs in is wiped."""
    done = subprocess.run(
        [sys.executable, "-m", "devstack", "--root", str(root), "down"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise StackFailed(f"`python -m devstack --root {root} down` failed:\n{done.stdout}{done.stderr}")
    for line in done.stdout.splitlines():
        print(f"[soak] down: {line}", flush=True)


def prepare_root(root: Path, stop: Callable[[Path], None] = stop_leftovers) -> None:
    """An empty soak folder: wiped if the soak made it (after stopping what still runs there), refused
    if it holds anything else."""
    if root.exists() and any(root.iterdir()):
        if not (root / MARKER).exists():
            raise StackFailed(f"{root} is not empty and not a soak folder ({MARKER} missing): not wiping it")
        stop(root)
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text("made by python -m devstack.soak; wiped at each start\n")


class LocalStack:
    def __init__(self, root: Path, repository: Path) -> None:
        self.root, self._repository = root, repository
        self.ports = {name: free_port() for name in PORT_VARIABLES}
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['VR_GATEWAY_PORT']}"

    @property
    def ready_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{self.ports[name]}/readyz" for name in READY_SERVICES]

    @property
    def record_path(self) -> Path:
        return self.root / ".local" / "stack.json"

    @property
    def log_path(self) -> Path:
        return self.root / "up.log"

    def admin_key(self) -> str:
        return str(json.loads((self.root / ".local" / "secrets.json").read_text())["bootstrap_admin_key"])

    def start(self, within_s: float = 300.0) -> None:
        prepare_root(self.root)
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")}
        env.update({name: str(port) for name, port in self.ports.items()})
        env.update(SOAK_ENVIRONMENT)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "devstack", "--root", str(self.root), "up"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._repository,
            )
        deadline = time.monotonic() + within_s
        while UP_LINE not in self.log_path.read_text(errors="replace"):
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise StackFailed(f"the stack did not come up (see {self.log_path}):\n{self.log_tail()}")
            time.sleep(0.5)

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except FileNotFoundError:
            return "(no log)"

    def stop(self) -> None:
        """SIGINT and wait; SIGKILL after the bound, and that is a failure. A stack that had already
        exited (its supervisor gave up on a part) is a failure too."""
        process = self._process
        if process is None:
            return
        if process.poll() is not None:
            raise StackFailed(
                f"the stack had already exited with {process.returncode} before the soak stopped it "
                f"(see {self.log_path}):\n{self.log_tail()}"
            )
        process.send_signal(signal.SIGINT)
        try:
            process.wait(STOP_BOUND_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise StackFailed(f"the stack did not stop within {STOP_BOUND_SECONDS:.0f} s of SIGINT") from None
        if process.returncode != 0:
            raise StackFailed(
                f"the stack's orderly stop ended with {process.returncode} (see {self.log_path}):\n"
                f"{self.log_tail()}"
            )
