"""Who is calling: `Authorization: Bearer <key>` → key, tenant, role → the identity tokens services
trust (the gateway's handler; storage through the `KeyDirectory` port).

Resolved keys are kept for `key_cache_seconds` (a revoked or expired key stops working within that
time on every instance, at once on the one that revoked it), so most requests cost no database call
and no signature. Unknown keys are kept too, for `unknown_key_cache_seconds`, so a client repeating a
bad key costs no database lookup; and failed attempts are limited per client address
(docs/security.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from gateway import metrics
from gateway.domain.keys import PLATFORM_TENANT, ApiKey, key_hash
from gateway.domain.limits import TokenBuckets
from gateway.domain.ports import KeyDirectory
from gateway.domain.tenants import Tenant
from vr_shared.identity import Identity, IdentitySigner, audience
from vr_shared.roles import Role
from vr_shared.web import Problem

V = TypeVar("V")
_MAX_CACHED = 100_000  # bounded: a flood of distinct keys cannot grow a cache without end


@dataclass(frozen=True, slots=True)
class Caller:
    key: ApiKey
    tenant: Tenant | None  # None for platform admins
    identity: Identity
    resolved_at: float
    # One token per service (each its own audience), signed when first needed.
    tokens: dict[str, str] = field(default_factory=dict, compare=False)


def unauthenticated(reason: str, detail: str) -> Problem:
    metrics.AUTH_FAILURES.labels(reason).inc()
    return Problem(
        401,
        "Unauthenticated",
        detail,
        type_="/problems/unauthenticated",
        headers={"WWW-Authenticate": 'Bearer realm="value-realization"'},
    )


class KeyResolver:
    def __init__(
        self,
        directory: KeyDirectory,
        signer: IdentitySigner,
        *,
        cache_seconds: float,
        token_ttl_seconds: int,
        unknown_key_seconds: float,
        failures: TokenBuckets,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._directory, self._signer, self._clock = directory, signer, clock
        # A cached token must outlive its use by the service: reuse it for at most a third of its life.
        self._keep = min(cache_seconds, token_ttl_seconds / 3)
        self._cache: dict[bytes, Caller] = {}
        self._unknown_for = unknown_key_seconds
        self._unknown: dict[bytes, float] = {}  # key hash → until when it is known to be unknown
        self._failures = failures

    async def resolve(self, authorization: str | None, client: str) -> Caller:
        """The caller, or 401 (and the failure counted for `client`), or 429 once `client` has failed
        too often — before any lookup."""
        wait = self._failures.wait(client)
        if wait is not None:
            metrics.AUTH_FAILURES.labels("rate_limited").inc()
            raise Problem(
                429,
                "Too many failed authentications",
                f"too many requests with bad keys from this address; retry in {wait} s",
                type_="/problems/rate-limited",
                headers={"Retry-After": str(wait)},
            )
        try:
            return await self._resolve(authorization)
        except Problem:
            self._failures.spend(client)
            raise

    async def _resolve(self, authorization: str | None) -> Caller:
        key = _bearer(authorization)
        digest, now = key_hash(key), self._clock()
        cached = self._cache.get(digest)
        if cached is not None and now - cached.resolved_at < self._keep:
            return cached
        if self._unknown.get(digest, 0.0) > now:
            raise unauthenticated("unknown_key", "the API key is not valid")
        found = await self._directory.key_by_secret(key)
        if found is None:
            _bounded(self._unknown)[digest] = now + self._unknown_for
            raise unauthenticated("unknown_key", "the API key is not valid")
        if not found.usable_at(datetime.now(UTC)):
            self._cache.pop(digest, None)
            reason = "revoked_key" if found.revoked_at else "expired_key"
            raise unauthenticated(reason, f"the API key is {reason.split('_')[0]}")
        tenant = None if found.tenant_id == PLATFORM_TENANT else await self._directory.tenant(found.tenant_id)
        identity = Identity(
            tenant=found.tenant_id,
            role=Role(found.role),
            key_id=found.id,
            facilities=frozenset(tenant.facilities if tenant else ()),
            tenant_kind=tenant.kind if tenant else "health_system",
            timezone=tenant.timezone if tenant else "UTC",
        )
        caller = Caller(found, tenant, identity, now)
        _bounded(self._cache)[digest] = caller
        return caller

    def token(self, caller: Caller, service: str) -> str:
        """The caller's identity token for one service (its audience), signed once per cached caller."""
        signed = caller.tokens.get(service)
        if signed is None:
            signed = caller.tokens[service] = self._signer.sign(caller.identity, audience(service))
        return signed

    def acting_for(self, caller: Caller, identity: Identity) -> Caller:
        """The caller with another identity (a vendor reading a health system's KPIs through the
        contracts it is party to, a platform admin acting for a tenant), signed like any other."""
        return Caller(caller.key, caller.tenant, identity, self._clock())

    def forget(self, key_id: str) -> None:
        for digest, caller in list(self._cache.items()):
            if caller.key.id == key_id:
                del self._cache[digest]


def _bounded(cache: dict[bytes, V]) -> dict[bytes, V]:
    if len(cache) >= _MAX_CACHED:
        cache.clear()
    return cache


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise unauthenticated("missing_key", "send the API key as Authorization: Bearer <key>")
    scheme, _, key = authorization.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise unauthenticated("malformed_header", "the Authorization header must be: Bearer <key>")
    return key.strip()
