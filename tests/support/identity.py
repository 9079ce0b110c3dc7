"""Tokens as the gateway will mint them, signed with the test secret."""

from __future__ import annotations

from vr_shared.identity import Identity, IdentitySigner, Role, TenantKind

IDENTITY_SECRET = "test-identity-secret-0123456789abcdef0123456789"
PSEUDONYM_KEY = "test-pseudonym-master-key-0123456789abcdef012345"
TENANT = "mission-health"
FACILITIES = frozenset({"asheville-main", "mission-west"})
TIMEZONE = "America/New_York"


def token(
    *,
    tenant: str = TENANT,
    facilities: frozenset[str] = FACILITIES,
    role: Role = "pipeline",
    ttl_seconds: int = 60,
    secret: str = IDENTITY_SECRET,
    now: float | None = None,
    tenant_kind: TenantKind = "health_system",
    timezone: str = TIMEZONE,
) -> str:
    identity = Identity(
        tenant=tenant,
        role=role,
        key_id="key-test",
        facilities=facilities,
        tenant_kind=tenant_kind,
        timezone=timezone,
    )
    return IdentitySigner(secret, ttl_seconds=ttl_seconds).sign(identity, now=now)
