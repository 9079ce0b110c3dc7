"""A service as its own process, as in production: for benchmarks and the tests that watch a real stack
from outside (Prometheus scraping each service's /metrics)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping

from pydantic import SecretStr
from pydantic_settings import BaseSettings

from devstack.ports import free_port, wait_listening


def settings_environment(settings: BaseSettings) -> dict[str, str]:
    """The environment that makes a service build exactly these settings: `VR_<FIELD>` for each field
    (the prefix every service reads), secrets revealed, `None` left out."""
    environment: dict[str, str] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        environment[f"VR_{name.upper()}"] = str(value)
    return environment


@contextlib.contextmanager
def service_process(module: str, env: Mapping[str, str], *, log_level: str = "WARNING") -> Iterator[str]:
    """`python -m <module>` (one uvicorn worker) on a free loopback port, `env` over this process's
    environment; yields its base URL and stops it (SIGTERM, as an orchestrator would) at the end."""
    port = free_port()
    environment = {**os.environ, "VR_LOG_LEVEL": log_level, **env, "VR_HTTP_PORT": str(port)}
    process = subprocess.Popen([sys.executable, "-m", module], env=environment)
    try:
        if not wait_listening(port, timeout_s=60):
            raise RuntimeError(f"{module} did not start (exit code {process.poll()})")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
