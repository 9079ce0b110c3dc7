"""Who is calling: `Authorization: Bearer <key>` → key, tenant, role → the identity token services trust.

Resolved keys are kept for `key_cache_seconds` (a revoked or expired key stops working within that
time on every instance, at once on the one that revoked it), so most requests cost no database call
and no signature.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

from gateway import metrics
from gateway.adapters.directory import PostgresDirectory
from gateway.domain.keys import PLATFORM_TENANT, ApiKey, key_hash
from gateway.domain.tenants import Tenant
from vr_shared.identity import Identity, IdentitySigner, Role
from vr_shared.web import Problem


@dataclass(frozen=True, slots=True)
class Caller:
    key: ApiKey
    tenant: Tenant | None  # None for platform admins
    identity: Identity
    token: str
    resolved_at: float


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
        directory: PostgresDirectory,
        signer: IdentitySigner,
        *,
        cache_seconds: float,
        token_ttl_seconds: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._directory, self._signer, self._clock = directory, signer, clock
        # A cached token must outlive its use by the service: reuse it for at most a third of its life.
        self._keep = min(cache_seconds, token_ttl_seconds / 3)
        self._cache: dict[bytes, Caller] = {}

    async def resolve(self, authorization: str | None) -> Caller:
        key = _bearer(authorization)
        digest = key_hash(key)
        cached = self._cache.get(digest)
        if cached is not None and self._clock() - cached.resolved_at < self._keep:
            return cached
        found = await self._directory.key_by_secret(key)
        if found is None:
            raise unauthenticated("unknown_key", "the API key is not valid")
        if not found.usable_at(datetime.now(UTC)):
            self._cache.pop(digest, None)
            reason = "revoked_key" if found.revoked_at else "expired_key"
            raise unauthenticated(reason, f"the API key is {reason.split('_')[0]}")
        tenant = None if found.tenant_id == PLATFORM_TENANT else await self._directory.tenant(found.tenant_id)
        identity = Identity(
            tenant=found.tenant_id,
            role=cast(Role, found.role),
            key_id=found.id,
            facilities=frozenset(tenant.facilities if tenant else ()),
            tenant_kind=tenant.kind if tenant else "health_system",
            timezone=tenant.timezone if tenant else "UTC",
        )
        caller = Caller(found, tenant, identity, self._signer.sign(identity), self._clock())
        if len(self._cache) > 100_000:  # bounded: a flood of distinct keys cannot grow it without end
            self._cache.clear()
        self._cache[digest] = caller
        return caller

    def acting_for(self, caller: Caller, identity: Identity) -> Caller:
        """The caller with another identity (a vendor reading a health system's KPIs through the
        contracts it is party to, a platform admin acting for a tenant), signed like any other."""
        return Caller(caller.key, caller.tenant, identity, self._signer.sign(identity), self._clock())

    def forget(self, key_id: str) -> None:
        for digest, caller in list(self._cache.items()):
            if caller.key.id == key_id:
                del self._cache[digest]


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise unauthenticated("missing_key", "send the API key as Authorization: Bearer <key>")
    scheme, _, key = authorization.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise unauthenticated("malformed_header", "the Authorization header must be: Bearer <key>")
    return key.strip()
