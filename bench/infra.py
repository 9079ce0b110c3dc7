"""The broker and PostgreSQL a benchmark runs on (the environment's if set, else local ones from wheels),
and the services it measures, each as its own process as in production."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping

from devstack.broker import running_broker
from devstack.ports import free_port, wait_listening
from devstack.postgres import running_postgres


@contextlib.contextmanager
def broker_servers() -> Iterator[str]:
    if servers := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield servers
        return
    with running_broker() as local:
        yield local.bootstrap_servers


@contextlib.contextmanager
def database_url() -> Iterator[str]:
    if url := os.environ.get("DATABASE_URL"):
        yield url
        return
    with running_postgres() as local:
        yield local.url


@contextlib.contextmanager
def service_process(module: str, env: Mapping[str, str]) -> Iterator[str]:
    """`python -m <module>` (one uvicorn worker) on a free loopback port, `env` over this process's
    environment, warnings-only logs; yields its base URL and stops it at the end."""
    port = free_port()
    environment = {**os.environ, "VR_LOG_LEVEL": "WARNING", **env, "VR_HTTP_PORT": str(port)}
    process = subprocess.Popen([sys.executable, "-m", module], env=environment)
    try:
        if not wait_listening(port, timeout_s=60):
            raise RuntimeError(f"{module} did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=20)
