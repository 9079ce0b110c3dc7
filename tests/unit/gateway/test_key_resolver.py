"""Key resolution on a fake directory (the `KeyDirectory` port): unknown keys are remembered, failures
are limited per address before any lookup, and each service gets a token of its own audience."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from gateway.domain.keys import ApiKey, key_hash
from gateway.domain.limits import TokenBuckets
from gateway.domain.tenants import Tenant
from gateway.handlers import KeyResolver
from tests.support.identity import GATEWAY_PRIVATE_KEY, GATEWAY_PUBLIC_KEY
from vr_shared.identity import GATEWAY, IdentitySigner, IdentityVerifier
from vr_shared.web import Problem

GOOD = "vrk_the-one-good-key-of-this-test-0000000000"
HEALTH = Tenant(id="hs", name="H", kind="health_system", timezone="America/New_York", facilities=["h-main"])


@dataclass
class FakeKeyDirectory:
    lookups: list[bytes] = field(default_factory=list)

    async def key_by_secret(self, key: str) -> ApiKey | None:
        self.lookups.append(key_hash(key))
        if key != GOOD:
            return None
        return ApiKey("key_1", "hs", "ops", "ops", datetime(2026, 1, 1, tzinfo=UTC), None, None)

    async def tenant(self, tenant_id: str) -> Tenant | None:
        return HEALTH if tenant_id == "hs" else None


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _resolver(directory: FakeKeyDirectory, clock: Clock, failures_per_minute: int = 3) -> KeyResolver:
    return KeyResolver(
        directory,
        IdentitySigner(GATEWAY_PRIVATE_KEY),
        cache_seconds=5,
        token_ttl_seconds=60,
        unknown_key_seconds=30,
        failures=TokenBuckets(failures_per_minute / 60, failures_per_minute, clock),
        clock=clock,
    )


async def test_an_unknown_key_costs_one_lookup_until_its_cache_entry_expires() -> None:
    directory, clock = FakeKeyDirectory(), Clock()
    resolver = _resolver(directory, clock, failures_per_minute=100)
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        with pytest.raises(Problem) as refused:
            await resolver.resolve("Bearer vrk_guess", address)
        assert refused.value.status == 401
    assert len(directory.lookups) == 1
    clock.now += 31
    with pytest.raises(Problem):
        await resolver.resolve("Bearer vrk_guess", "10.0.0.1")
    assert len(directory.lookups) == 2


async def test_an_address_that_keeps_failing_waits_and_then_may_try_again() -> None:
    directory, clock = FakeKeyDirectory(), Clock()
    resolver = _resolver(directory, clock, failures_per_minute=3)
    for _ in range(3):
        with pytest.raises(Problem):
            await resolver.resolve(None, "10.0.0.9")
    with pytest.raises(Problem) as limited:
        await resolver.resolve(f"Bearer {GOOD}", "10.0.0.9")  # even a good key: refused before lookup
    assert limited.value.status == 429 and int(limited.value.headers["Retry-After"]) == 20
    assert directory.lookups == []
    assert (await resolver.resolve(f"Bearer {GOOD}", "10.0.0.10")).key.id == "key_1"  # another address
    clock.now += 20
    assert (await resolver.resolve(f"Bearer {GOOD}", "10.0.0.9")).key.id == "key_1"


async def test_each_service_gets_a_token_of_its_own_audience() -> None:
    resolver = _resolver(FakeKeyDirectory(), Clock())
    caller = await resolver.resolve(f"Bearer {GOOD}", "10.0.0.1")
    for service in ("ingest", "kpi-engine", "settlement"):
        verifier = IdentityVerifier({GATEWAY: GATEWAY_PUBLIC_KEY}, f"vr-{service}")
        identity = verifier.verify(resolver.token(caller, service))
        assert (identity.tenant, identity.role, identity.facilities) == ("hs", "ops", frozenset({"h-main"}))
    assert resolver.token(caller, "ingest") == resolver.token(caller, "ingest")  # signed once, kept
