"""Secrets of the local stack, generated once and kept in `.local/secrets.json` (mode 0600).

They must survive restarts: the pseudonymisation key is what makes a patient's pseudonym stable across
runs, and the local PostgreSQL keeps its data (and the services' roles) between runs. Each is random;
an environment variable of the same name replaces it (the services check every value they get and
refuse a weak one, docs/security.md). Each service is given only what it needs.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path

from vr_shared.secrets import load_private_key, new_key_pair, public_pem

_MADE: dict[str, Callable[[], str]] = {
    "gateway_private_key": lambda: new_key_pair()[0],
    "settlement_private_key": lambda: new_key_pair()[0],
    "pseudonym_key": lambda: secrets.token_urlsafe(48),
    "bootstrap_admin_key": lambda: "vrk_" + secrets.token_urlsafe(32),
    "db_password_gateway": lambda: secrets.token_urlsafe(24),
    "db_password_kpi-engine": lambda: secrets.token_urlsafe(24),
    "db_password_settlement": lambda: secrets.token_urlsafe(24),
}
_ENVIRONMENT = {  # a variable set in the environment wins over the stored value
    "gateway_private_key": "VR_IDENTITY_PRIVATE_KEY",
    "settlement_private_key": "VR_SERVICE_PRIVATE_KEY",
    "pseudonym_key": "VR_PSEUDONYM_KEY",
    "bootstrap_admin_key": "VR_BOOTSTRAP_ADMIN_KEY",
}


def local_secrets(state_dir: Path) -> dict[str, str]:
    path = state_dir / "secrets.json"
    stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    missing = {name: make() for name, make in _MADE.items() if name not in stored}
    if missing:
        stored.update(missing)
        state_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(stored, indent=2))
        path.chmod(0o600)
    return {name: os.environ.get(_ENVIRONMENT.get(name, ""), stored[name]) for name in _MADE}


def service_environment(state_dir: Path, service: str) -> dict[str, str]:
    """The secrets one service is started with."""
    return environment_of(service, local_secrets(state_dir))


def environment_of(service: str, found: Mapping[str, str]) -> dict[str, str]:
    """The variables one service (`gateway`, `ingest`, `kpi-engine`, `settlement`) gets from a set of
    secrets named as in `.local/secrets.json`: its own, and the public halves of the keys it trusts."""
    gateway_public = public_pem(load_private_key(found["gateway_private_key"]))
    own: dict[str, dict[str, str]] = {
        "gateway": {
            "VR_IDENTITY_PRIVATE_KEY": found["gateway_private_key"],
            "VR_BOOTSTRAP_ADMIN_KEY": found["bootstrap_admin_key"],
        },
        "ingest": {"VR_PSEUDONYM_KEY": found["pseudonym_key"]},
        "kpi-engine": {
            "VR_SETTLEMENT_PUBLIC_KEY": public_pem(load_private_key(found["settlement_private_key"]))
        },
        "settlement": {"VR_SERVICE_PRIVATE_KEY": found["settlement_private_key"]},
    }
    return {"VR_IDENTITY_PUBLIC_KEY": gateway_public, **own[service]}


def database_passwords(state_dir: Path) -> dict[str, str]:
    """Each service's database password (service name → password)."""
    found = local_secrets(state_dir)
    return {
        name.removeprefix("db_password_"): v for name, v in found.items() if name.startswith("db_password_")
    }
