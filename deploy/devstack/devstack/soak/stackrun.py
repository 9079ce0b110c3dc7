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


def prepare_root(root: Path) -> None:
    """An empty soak folder: wiped if the soak made it, refused if it holds anything else."""
    if root.exists() and any(root.iterdir()):
        if not (root / MARKER).exists():
            raise StackFailed(f"{root} is not empty and not a soak folder ({MARKER} missing): not wiping it")
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
                tail = self.log_path.read_text(errors="replace")[-3000:]
                raise StackFailed(f"the stack did not come up (see {self.log_path}):\n{tail}")
            time.sleep(0.5)

    def stop(self) -> None:
        """SIGINT and wait; SIGKILL after the bound, and that is a failure."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(STOP_BOUND_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise StackFailed(f"the stack did not stop within {STOP_BOUND_SECONDS:.0f} s of SIGINT") from None
        if process.returncode != 0:
            raise StackFailed(
                f"the stack's orderly stop ended with {process.returncode} (see {self.log_path})"
            )
