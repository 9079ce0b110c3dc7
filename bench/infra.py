"""The broker and PostgreSQL a benchmark runs on (the environment's if set, else local ones from wheels),
and the services it measures, each as its own process as in production."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from devstack.broker import running_broker
from devstack.postgres import running_postgres
from devstack.processes import service_process

__all__ = ["broker_servers", "database_url", "service_process"]


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
