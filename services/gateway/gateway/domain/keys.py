"""API keys: random, shown once, stored as a hash; and what a key may be created for.

A key is `vrk_` + 43 base64url characters (32 random bytes). Only its SHA-256 is stored: the key has
256 bits of entropy, so a fast hash is enough (no password stretching needed) and lookups are by hash.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

PREFIX = "vrk_"
PLATFORM_TENANT = "platform"  # the tenant of platform_admin keys (not a health system or vendor)
BOOTSTRAP_KEY_ID = "key_bootstrap_admin"  # the key VR_BOOTSTRAP_ADMIN_KEY makes


def new_key() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def new_key_id() -> str:
    return "key_" + secrets.token_hex(8)


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    tenant_id: str
    role: str
    name: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def usable_at(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "tenant_id": self.tenant_id,
            "role": self.role,
            "name": self.name,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }
