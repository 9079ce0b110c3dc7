"""Secrets of the local stack, generated once and kept in `.local/secrets.json`.

They must survive restarts: the pseudonymisation key is what makes a patient's pseudonym stable across
runs, and the local PostgreSQL keeps its data between runs.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

_NAMES = {
    "identity_secret": "VR_IDENTITY_SECRET",
    "pseudonym_key": "VR_PSEUDONYM_KEY",
    # The gateway honours it as a platform_admin key; `make up` prints it.
    "bootstrap_admin_key": "VR_BOOTSTRAP_ADMIN_KEY",
}


def local_secrets(state_dir: Path) -> dict[str, str]:
    path = state_dir / "secrets.json"
    stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    changed = False
    for name in _NAMES:
        if name not in stored:
            stored[name] = ("vrk_" if name == "bootstrap_admin_key" else "") + secrets.token_urlsafe(48)
            changed = True
    if changed:
        state_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(stored, indent=2))
        path.chmod(0o600)
    return {name: os.environ.get(env, stored[name]) for name, env in _NAMES.items()}


def service_environment(state_dir: Path) -> dict[str, str]:
    return {env: local_secrets(state_dir)[name] for name, env in _NAMES.items()}
