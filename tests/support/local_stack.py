"""`make up` as a user runs it, for the tests of the local stack: make's own process (in a session of
its own, so a signal the test sends reaches make alone, as `kill` from another terminal would), on free
ports, its state in a folder of the test's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from devstack.ports import free_port
from devstack.processes import start_time
from devstack.stack import PORT_VARIABLES

ROOT = Path(__file__).resolve().parents[2]
UP = "Value Realization is up."


def stack_ports() -> dict[str, int]:
    return {variable: free_port() for variable in PORT_VARIABLES}


@dataclass
class MakeUp:
    root: Path
    ports: dict[str, int]
    extra_env: dict[str, str] = field(default_factory=dict)
    label: str = "up"  # several runs on one root: each its own output
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.root.parent / f"{self.root.name}-{self.label}.log"

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.ports['VR_GATEWAY_PORT']}"

    @property
    def admin_key(self) -> str:
        return str(json.loads((self.root / ".local" / "secrets.json").read_text())["bootstrap_admin_key"])

    def start(self, *, wait_up: bool = True, timeout_s: float = 180) -> None:
        removed = ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "MAKEFLAGS", "MAKELEVEL")
        env = {
            **{k: v for k, v in os.environ.items() if k not in removed},
            **{name: str(port) for name, port in self.ports.items()},
            **self.extra_env,
        }
        self.root.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                ["make", "--no-print-directory", "up", f"UP_ROOT={self.root}"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        if wait_up:
            self.wait_for(UP, timeout_s)

    def wait_for(self, text: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while text not in self.output:
            assert self.process is not None
            assert self.process.poll() is None, (
                f"make up ended ({self.process.returncode}):\n{self.output[-4000:]}"
            )
            assert time.monotonic() < deadline, f"not seen in {timeout_s} s: {text!r}\n{self.output[-4000:]}"
            time.sleep(0.2)

    def record(self) -> dict[str, dict[str, int]]:
        body = json.loads((self.root / ".local" / "stack.json").read_text())
        return {"orchestrator": body["orchestrator"], **body["parts"]}

    def pid(self, part: str) -> int:
        return int(self.record()[part]["pid"])

    def signal_make(self, signum: int) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signum)

    def wait_stopped(self, timeout_s: float) -> tuple[int, float]:
        """make's exit code and how long it took."""
        assert self.process is not None
        started = time.monotonic()
        code = self.process.wait(timeout=timeout_s)
        return code, time.monotonic() - started

    def kill_all(self) -> None:
        """Last resort of a failing test: nothing of this stack outlives it."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        subprocess.run(
            [".venv/bin/python", "-m", "devstack", "--root", str(self.root), "down"], cwd=ROOT, check=False
        )


def alive(pid: int) -> bool:
    return start_time(pid) is not None


def descendants(pid: int) -> list[int]:
    """`pid`'s children, theirs, … (PostgreSQL's backends, anything a part started)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, pending = [], [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def listening_sockets(pids: list[int]) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN held by one of `pids` (IPv4 and IPv6)."""
    inodes: set[str] = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    found = set()
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                address, port = fields[1].split(":")
                found.add((_address(address, v6), int(port, 16)))
    return found


def _address(hex_address: str, v6: bool) -> str:
    raw = bytes.fromhex(hex_address)
    if not v6:
        return ".".join(str(b) for b in reversed(raw))
    words = [raw[i : i + 4][::-1] for i in range(0, 16, 4)]  # each 32-bit word in host order
    return ":".join(b"".join(words)[i : i + 2].hex() for i in range(0, 16, 2))
