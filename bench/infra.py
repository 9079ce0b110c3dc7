"""The broker and PostgreSQL a benchmark runs on (the environment's if set, else local ones from wheels),
and the services it measures, each as its own process as in production."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator

from devstack.broker import running_broker
from devstack.postgres import running_postgres
from devstack.processes import service_process
from devstack.secrets import environment_of
from vr_shared.identity import Identity, IdentitySigner, audience
from vr_shared.secrets import new_key_pair

__all__ = ["SERVICE_SECRETS", "broker_servers", "database_url", "identity_token", "service_process"]


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


# Secrets of one benchmark run: random (services refuse weak ones), the same for every service started.
GATEWAY_PRIVATE_KEY, GATEWAY_PUBLIC_KEY = new_key_pair()
SETTLEMENT_PRIVATE_KEY, SETTLEMENT_PUBLIC_KEY = new_key_pair()
PSEUDONYM_KEY = secrets.token_urlsafe(48)
ADMIN_KEY = "vrk_" + secrets.token_urlsafe(32)
_SECRETS = {  # named as the local stack names them, so each service gets what `make up` gives it
    "gateway_private_key": GATEWAY_PRIVATE_KEY,
    "settlement_private_key": SETTLEMENT_PRIVATE_KEY,
    "pseudonym_key": PSEUDONYM_KEY,
    "bootstrap_admin_key": ADMIN_KEY,
}
# Each service's secrets as its environment, by the module a benchmark starts.
SERVICE_SECRETS = {
    module: environment_of(service, _SECRETS)
    for module, service in (
        ("ingest", "ingest"),
        ("kpi_engine", "kpi-engine"),
        ("settlement", "settlement"),
        ("gateway", "gateway"),
    )
}


def identity_token(identity: Identity, service: str, ttl_seconds: int = 300) -> str:
    """A token as the gateway signs it, for one service."""
    return IdentitySigner(GATEWAY_PRIVATE_KEY, ttl_seconds=ttl_seconds).sign(identity, audience(service))
