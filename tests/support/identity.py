"""Tokens as the gateway will mint them, signed with the test session's gateway key; and every other
secret a service needs, random per test session (a service refuses weak ones)."""

from __future__ import annotations

import secrets

from vr_shared.identity import Identity, IdentitySigner, TenantKind, audience
from vr_shared.roles import Role
from vr_shared.secrets import new_key_pair

GATEWAY_PRIVATE_KEY, GATEWAY_PUBLIC_KEY = new_key_pair()
SETTLEMENT_PRIVATE_KEY, SETTLEMENT_PUBLIC_KEY = new_key_pair()
PSEUDONYM_KEY = secrets.token_urlsafe(48)
SERVICES = ("ingest", "kpi-engine", "settlement")
TENANT = "mission-health"
FACILITIES = frozenset({"asheville-main", "mission-west"})
TIMEZONE = "America/New_York"


def token(
    *,
    tenant: str = TENANT,
    facilities: frozenset[str] = FACILITIES,
    role: Role | str = Role.PIPELINE,
    ttl_seconds: int = 60,
    private_key: str = GATEWAY_PRIVATE_KEY,
    now: float | None = None,
    tenant_kind: TenantKind = "health_system",
    timezone: str = TIMEZONE,
    service: str | None = None,
    kpis: frozenset[str] | None = None,
) -> str:
    """For `service` (its audience), or for any of the three when None (tests that call several)."""
    identity = Identity(
        tenant=tenant,
        role=Role(role),
        key_id="key-test",
        facilities=facilities,
        tenant_kind=tenant_kind,
        timezone=timezone,
        kpis=kpis,
    )
    signer = IdentitySigner(private_key, ttl_seconds=ttl_seconds)
    if service is not None:
        return signer.sign(identity, audience(service), now=now)
    return signer.sign(identity, [audience(s) for s in SERVICES], now=now)
