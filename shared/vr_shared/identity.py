"""The caller identity the gateway signs and every service verifies (docs/security.md,
docs/decisions/0003-asymmetric-identity-tokens.md).

The gateway authenticates the API key, then forwards the request with a short-lived token in the
`X-VR-Identity` header: an EdDSA (Ed25519) JWT carrying the tenant, its kind, facilities and time zone,
the key's role and id, for one service (the audience `vr-<service>`). The gateway alone holds the private
key; services hold the public key, so a service can verify a token but never mint one. A service that
calls another (settlement → KPI engine) signs with its own key as its own issuer, in role `service`.
Services trust nothing else about the caller; a request without a valid token is 401. Tokens of any
other algorithm (the shared-secret HS256 tokens of old) are refused.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

import jwt

from vr_shared.roles import KEY_ROLES, Role
from vr_shared.secrets import load_private_key, load_public_key

HEADER = "X-VR-Identity"
GATEWAY = "vr-gateway"  # the issuer of callers' identities
ALGORITHM = "EdDSA"
_CLOCK_SKEW_SECONDS = 5

TenantKind = Literal["health_system", "vendor"]


def audience(service: str) -> str:
    """The audience of tokens for one service (`kpi-engine` → `vr-kpi-engine`)."""
    return f"vr-{service}"


def issuer(service: str) -> str:
    """The issuer a service signs its own calls as (`settlement` → `vr-settlement`)."""
    return f"vr-{service}"


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
    # health system; settlement for one contract): KPI grants, `kpi` or `kpi[dimension=value]`
    # (vr_shared.kpis.may_read). None: all of them.
    kpis: frozenset[str] | None = None

    def owns_facility(self, facility: str) -> bool:
        return facility in self.facilities


class IdentitySigner:
    """Mints tokens with an Ed25519 private key: the gateway (issuer `vr-gateway`), or a service for its
    own calls (issuer `vr-<service>`)."""

    def __init__(self, private_key_pem: str, *, issuer: str = GATEWAY, ttl_seconds: int = 60) -> None:
        self._key = load_private_key(private_key_pem)
        self._issuer = issuer
        self._ttl = ttl_seconds

    def sign(self, identity: Identity, audience: str | list[str], *, now: float | None = None) -> str:
        """For one service (its audience); a list names several (local tools and tests)."""
        issued = int(now if now is not None else time.time())
        claims = {
            "iss": self._issuer,
            "aud": audience,
            "sub": identity.key_id,
            "tenant": identity.tenant,
            "kind": identity.tenant_kind,
            "role": str(identity.role),
            "fac": sorted(identity.facilities),
            "tz": identity.timezone,
            **({} if identity.kpis is None else {"kpis": sorted(identity.kpis)}),
            "iat": issued,
            "exp": issued + self._ttl,
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)


class IdentityVerifier:
    """Checks algorithm, signature (by the issuer's public key), audience, expiry and a short lifetime.

    `issuers` maps each trusted issuer to its public key (PEM). The gateway's tokens may carry any key
    role; another service's tokens only `service`.
    """

    def __init__(self, issuers: Mapping[str, str], audience: str, *, max_ttl_seconds: int = 300) -> None:
        self._keys = {name: load_public_key(pem) for name, pem in issuers.items()}
        self._audience = audience
        self._max_ttl = max_ttl_seconds

    def verify(self, token: str | None) -> Identity:
        if not token:
            raise InvalidIdentity(f"missing {HEADER} header: requests must come through the gateway")
        try:
            named = jwt.decode(token, options={"verify_signature": False}).get("iss")
            key = self._keys.get(named) if isinstance(named, str) else None
            if key is None:
                raise InvalidIdentity("identity token from an issuer this service does not trust")
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=named,
                leeway=_CLOCK_SKEW_SECONDS,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidIdentity("identity token expired") from exc
        except jwt.InvalidTokenError as exc:
            raise InvalidIdentity(f"invalid identity token: {exc}") from exc
        if int(claims["exp"]) - int(claims["iat"]) > self._max_ttl:
            raise InvalidIdentity("identity token lifetime exceeds the accepted maximum")
        identity = _identity_from(claims)
        if (identity.role == Role.SERVICE) == (named == GATEWAY):
            raise InvalidIdentity("identity token carries a role its issuer may not sign")
        return identity


def _identity_from(claims: dict[str, object]) -> Identity:
    role, kind, facilities = claims.get("role"), claims.get("kind", "health_system"), claims.get("fac", [])
    tenant, tz = claims.get("tenant"), claims.get("tz", "UTC")
    if role not in {r.value for r in Role}:
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
        role=Role(str(role)),
        key_id=str(claims["sub"]),
        facilities=frozenset(facilities),
        tenant_kind=kind,  # type: ignore[arg-type]
        timezone=tz,
        kpis=None if kpis is None else frozenset(kpis),
    )


__all__ = ["GATEWAY", "HEADER", "KEY_ROLES", "Identity", "IdentitySigner", "IdentityVerifier", "Role"]


def gateway_verifier(
    service: str, gateway_public_key: str, *, max_ttl_seconds: int, also: Mapping[str, str] | None = None
) -> IdentityVerifier:
    """The verifier of one service: tokens for its audience from the gateway, and from the services of
    `also` (issuer → public key) that call it."""
    return IdentityVerifier(
        {GATEWAY: gateway_public_key, **(also or {})}, audience(service), max_ttl_seconds=max_ttl_seconds
    )
