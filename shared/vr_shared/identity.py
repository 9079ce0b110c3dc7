"""The caller identity the gateway signs and every service verifies (SPEC §7).

The gateway authenticates the API key, then forwards the request with a short-lived token in the
`X-VR-Identity` header: an HS256 JWT carrying the tenant, its kind, facilities and time zone, the key's
role and id. Services trust nothing else about the caller; a request without a valid token is 401.
Facilities and time zone travel in the token so services need no call per request to learn them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal, get_args

import jwt

HEADER = "X-VR-Identity"
ISSUER = "vr-gateway"
AUDIENCE = "vr-services"
_ALGORITHM = "HS256"
_CLOCK_SKEW_SECONDS = 5

Role = Literal["platform_admin", "tenant_admin", "pipeline", "billing", "ops"]
ROLES: tuple[str, ...] = get_args(Role)
TenantKind = Literal["health_system", "vendor"]


class InvalidIdentity(Exception):
    """The token is missing, malformed, forged, expired or too long-lived. The message says which."""


@dataclass(frozen=True, slots=True)
class Identity:
    tenant: str
    role: Role
    key_id: str
    facilities: frozenset[str] = field(default_factory=frozenset)
    tenant_kind: TenantKind = "health_system"
    timezone: str = "UTC"
    # The KPIs this caller may read, when it may not read all of its tenant's (a vendor acting for a
    # health system sees the KPIs its contracts use); None: all of them.
    kpis: frozenset[str] | None = None

    def owns_facility(self, facility: str) -> bool:
        return facility in self.facilities


class IdentitySigner:
    """Mints tokens (the gateway; tests and local tools with the same secret)."""

    def __init__(self, secret: str, *, ttl_seconds: int = 60) -> None:
        self._secret = secret
        self._ttl = ttl_seconds

    def sign(self, identity: Identity, *, now: float | None = None) -> str:
        issued = int(now if now is not None else time.time())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": identity.key_id,
            "tenant": identity.tenant,
            "kind": identity.tenant_kind,
            "role": identity.role,
            "fac": sorted(identity.facilities),
            "tz": identity.timezone,
            **({} if identity.kpis is None else {"kpis": sorted(identity.kpis)}),
            "iat": issued,
            "exp": issued + self._ttl,
        }
        return jwt.encode(claims, self._secret, algorithm=_ALGORITHM)


class IdentityVerifier:
    """Checks signature, audience, issuer, expiry and that the lifetime is short."""

    def __init__(self, secret: str, *, max_ttl_seconds: int = 300) -> None:
        self._secret = secret
        self._max_ttl = max_ttl_seconds

    def verify(self, token: str | None) -> Identity:
        if not token:
            raise InvalidIdentity(f"missing {HEADER} header: requests must come through the gateway")
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[_ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                leeway=_CLOCK_SKEW_SECONDS,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidIdentity("identity token expired") from exc
        except jwt.InvalidTokenError as exc:
            raise InvalidIdentity(f"invalid identity token: {exc}") from exc
        if int(claims["exp"]) - int(claims["iat"]) > self._max_ttl:
            raise InvalidIdentity("identity token lifetime exceeds the accepted maximum")
        return _identity_from(claims)


def _identity_from(claims: dict[str, object]) -> Identity:
    role, kind, facilities = claims.get("role"), claims.get("kind", "health_system"), claims.get("fac", [])
    tenant, tz = claims.get("tenant"), claims.get("tz", "UTC")
    if role not in ROLES:
        raise InvalidIdentity("identity token carries an unknown role")
    if kind not in get_args(TenantKind):
        raise InvalidIdentity("identity token carries an unknown tenant kind")
    if not isinstance(tenant, str) or not tenant or not isinstance(tz, str):
        raise InvalidIdentity("identity token carries no tenant")
    if not isinstance(facilities, list) or not all(isinstance(f, str) for f in facilities):
        raise InvalidIdentity("identity token carries malformed facilities")
    kpis = claims.get("kpis")
    if kpis is not None and (not isinstance(kpis, list) or not all(isinstance(k, str) for k in kpis)):
        raise InvalidIdentity("identity token carries malformed kpis")
    return Identity(
        tenant=tenant,
        role=role,  # type: ignore[arg-type]
        key_id=str(claims["sub"]),
        facilities=frozenset(facilities),
        tenant_kind=kind,  # type: ignore[arg-type]
        timezone=tz,
        kpis=None if kpis is None else frozenset(kpis),
    )
