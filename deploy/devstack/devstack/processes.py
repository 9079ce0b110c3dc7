"""A service as its own process, as in production: for benchmarks and the tests that watch a real stack
from outside (Prometheus scraping each service's /metrics)."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, SecretStr
from pydantic_settings import BaseSettings

from devstack.ports import free_port, wait_listening

_PR_SET_PDEATHSIG = 1
# Set by the orchestrator of `make up` (stack.run): every part it starts from then on gets a death
# signal from the kernel when the orchestrator ends, however it ends (SIGKILL, OOM included).
_bound_to: list[int] = []


def bind_children_to_this_process() -> None:
    """From now on, parts started by `spawn` die with this process (Linux: PR_SET_PDEATHSIG). The
    kernel sends the signal when the *thread* that started the child ends, so parts are started from
    the main thread only (the supervisor's loop)."""
    _bound_to[:] = [os.getpid()]


def _death_pact(death_signal: int) -> Callable[[], None] | None:
    if not _bound_to or not sys.platform.startswith("linux"):
        return None
    parent = _bound_to[0]

    def in_child() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, death_signal, 0, 0, 0)
        if os.getppid() != parent:  # the orchestrator died between fork and prctl: no pact to make
            os._exit(1)

    return in_child


def spawn(
    command: Sequence[str],
    *,
    log_path: Path | None,
    death_signal: int = signal.SIGTERM,
    **options: Any,
) -> subprocess.Popen[bytes]:
    """Start a part of the local stack in a session of its own (a terminal's Ctrl-C reaches only the
    orchestrator, which stops the parts in order), its output appended to `log_path`; bound to the
    orchestrator by `death_signal` once `bind_children_to_this_process` was called."""
    log = log_path.open("ab") if log_path else None
    try:
        return subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=log or subprocess.DEVNULL,
            stderr=log or subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_death_pact(death_signal),  # prctl must run in the child
            **options,
        )
    finally:
        if log:
            log.close()  # the child has its own descriptor


def start_time(pid: int) -> int | None:
    """When the process started (clock ticks since boot, /proc/<pid>/stat field 22), None if it is
    gone or has ended (a zombie): with the pid, it names one process, never a later one that reused
    the pid."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else int(fields[19])


def exit_status(returncode: int) -> str:
    """`exit 3`, or `killed by SIGKILL` for a signal (Popen's negative return codes)."""
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-returncode).name}"
    return f"exit {returncode}"


def terminate(process: subprocess.Popen[bytes], *, grace_s: float) -> None:
    """SIGTERM, and SIGKILL if it has not ended within `grace_s` (every local process ends this way)."""
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):  # uninterruptible: the kernel ends it
            process.wait(timeout=10)


def settings_environment(settings: BaseSettings) -> dict[str, str]:
    """The environment that makes a service build exactly these settings: one variable per field (its
    alias or `VR_<FIELD>`), secrets revealed, `None` left out."""
    environment: dict[str, str] = {}
    for name, field in type(settings).model_fields.items():
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        environment[_variable(name, field.validation_alias)] = (
            json.dumps(value) if isinstance(value, list | tuple | dict) else str(value)
        )
    return environment


def _variable(name: str, alias: object) -> str:
    """The variable a field is read from: its (first) alias, e.g. `DATABASE_URL`, else `VR_<NAME>`."""
    if isinstance(alias, str):
        return alias
    if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
        return alias.choices[0]
    return f"VR_{name.upper()}"


class ServiceUrl(str):
    """A service's base URL; `metrics` the base URL of its metrics port (where /metrics is served)."""

    metrics: str
    pid: int | None  # the process serving it, when it runs as one

    def __new__(cls, port: int, metrics_port: int, pid: int | None = None) -> ServiceUrl:
        url = super().__new__(cls, f"http://127.0.0.1:{port}")
        url.metrics, url.pid = f"http://127.0.0.1:{metrics_port}", pid
        return url


def ports_environment(port: int, metrics_port: int, log_level: str) -> dict[str, str]:
    return {"VR_LOG_LEVEL": log_level, "VR_HTTP_PORT": str(port), "VR_METRICS_PORT": str(metrics_port)}


@contextlib.contextmanager
def service_process(
    module: str, env: Mapping[str, str], *, log_level: str = "WARNING", log_path: Path | None = None
) -> Iterator[ServiceUrl]:
    """`python -m <module>` (one uvicorn worker) on free loopback ports (the API's and the metrics'),
    `env` over this process's environment, its output to `log_path` if given; yields its base URL and
    stops it (SIGTERM, as an orchestrator would) at the end."""
    port, metrics_port = free_port(), free_port()
    environment = {**os.environ, **env, **ports_environment(port, metrics_port, log_level)}
    log = log_path.open("ab") if log_path else None
    process = subprocess.Popen([sys.executable, "-m", module], env=environment, stdout=log, stderr=log)
    try:
        if not wait_listening(port, timeout_s=60):
            raise RuntimeError(f"{module} did not start (exit code {process.poll()})")
        yield ServiceUrl(port, metrics_port, process.pid)
    finally:
        terminate(process, grace_s=20)
        if log:
            log.close()
