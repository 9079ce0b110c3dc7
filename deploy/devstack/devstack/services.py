"""A service as a process of its own: `python -m <module>` on fixed loopback ports, that can be killed
(SIGKILL, a crash) and started again where it was — one of the four parts of `make up`, or a service the
crash tests start on free ports (`LocalService.on_free_ports`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from devstack.ports import free_port, port_is_free, wait_listening
from devstack.processes import ServiceUrl, ports_environment, spawn, terminate

STOP_GRACE_S = 15.0


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    module: str
    port: int
    metrics_port: int  # /metrics is served here only, never on the API port (docs/security.md)
    port_variable: str
    metrics_port_variable: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"


class LocalService:
    def __init__(
        self, spec: ServiceSpec, environment: Callable[[], Mapping[str, str]], log_path: Path
    ) -> None:
        """`environment`: built at each start (the database URL a restart must use is current)."""
        self.spec, self.name, self.log_path = spec, spec.name, log_path
        self._environment = environment
        self.process: subprocess.Popen[bytes] | None = None

    @classmethod
    def on_free_ports(
        cls, module: str, env: Mapping[str, str], *, log_path: Path, log_level: str = "WARNING"
    ) -> LocalService:
        """`module` on free loopback ports (the API's and the metrics'), `env` over this process's
        environment: a service a test kills and starts again, found by its callers where it was."""
        spec = ServiceSpec(module, module, free_port(), free_port(), "VR_HTTP_PORT", "VR_METRICS_PORT")
        environment = {**os.environ, **env, **ports_environment(spec.port, spec.metrics_port, log_level)}
        return cls(spec, lambda: environment, log_path)

    @property
    def url(self) -> ServiceUrl:
        return ServiceUrl(self.spec.port, self.spec.metrics_port)

    def start(self) -> None:
        self.launch()
        self.wait_started()

    def launch(self) -> None:
        """Started once both its ports are free (a taken one is named with the variable that moves it)."""
        for port, variable in (
            (self.spec.port, self.spec.port_variable),
            (self.spec.metrics_port, self.spec.metrics_port_variable),
        ):
            if not port_is_free(port):
                raise RuntimeError(f"port {port} for {self.name} is taken; set {variable} to another port")
        self.process = spawn(
            [sys.executable, "-m", self.spec.module], log_path=self.log_path, env=dict(self._environment())
        )

    def wait_started(self) -> None:
        """Until it listens; an error as soon as it exits instead."""
        process = self.process
        assert process is not None, "launch() first"
        if not wait_listening(self.spec.port, timeout_s=60, alive=lambda: process.poll() is None):
            raise RuntimeError(f"{self.name} did not start (exit code {process.poll()}); see {self.log_path}")

    def stop(self) -> None:
        if self.process is not None:
            terminate(self.process, grace_s=STOP_GRACE_S)
            self.process = None

    def kill(self) -> None:
        """SIGKILL (a crash: nothing flushed, nothing said to its clients)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def ready(self) -> bool:
        return answers_ready(self.spec.url)


def answers_ready(base_url: str) -> bool:
    """The service's /readyz answers 200: every dependency it needs answers."""
    try:
        with urllib.request.urlopen(f"{base_url}/readyz", timeout=5) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def wait_ready(services: list[LocalService], timeout_s: float, waiting: Callable[[], None]) -> list[str]:
    """Wait until every service's /readyz answers 200; the names of those that did not in time.
    `waiting` runs between rounds (the supervisor keeps restarting what exits meanwhile)."""
    deadline = time.monotonic() + timeout_s
    pending = list(services)
    while pending and time.monotonic() < deadline:
        pending = [s for s in pending if not s.ready()]
        if pending:
            waiting()
            time.sleep(0.5)
    return [s.name for s in pending]
