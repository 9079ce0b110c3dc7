"""The shared rate limiter against a real PostgreSQL: GCRA's arithmetic on the database's clock, and
an instance that limits on its own while the database cannot be asked."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from devstack.ports import free_port
from gateway.adapters.migrate import migrate
from gateway.adapters.rate_limits import SharedRateLimits
from tests.integration.gateway.conftest import drop_schemas
from tests.support.infrastructure import Infrastructure
from vr_shared.db import create_engine

Limits = Callable[[float, int], SharedRateLimits]


@pytest.fixture
async def limits_in_a_schema(infrastructure: Infrastructure) -> AsyncIterator[Limits]:
    """Limiters (rate, burst) over one freshly migrated gateway schema, opened and closed here."""
    schema = f"gateway_limits_{uuid.uuid4().hex[:10]}"
    engine = create_engine(infrastructure.database_url, schema=schema)
    await migrate(engine, schema)
    await engine.dispose()
    made: list[SharedRateLimits] = []

    def limits(rate: float, burst: int) -> SharedRateLimits:
        made.append(SharedRateLimits(infrastructure.database_url, schema, rate, burst))
        return made[-1]

    yield limits
    for limiter in made:
        await limiter.close()
    await drop_schemas(infrastructure, schema)


async def test_a_key_gets_its_burst_then_one_request_per_interval(limits_in_a_schema: Limits) -> None:
    limits = limits_in_a_schema(2.0, 2)
    await limits.open()
    assert [await limits.take("key-a"), await limits.take("key-a")] == [None, None]
    assert await limits.take("key-a") == 1  # half a second early: Retry-After is never 0
    assert await limits.take("key-b") is None  # each key has its own budget
    await asyncio.sleep(0.6)  # one interval (0.5 s) has passed: one more request, not two
    assert await limits.take("key-a") is None
    assert await limits.take("key-a") == 1


async def test_refused_requests_do_not_spend_the_budget(limits_in_a_schema: Limits) -> None:
    limits = limits_in_a_schema(4.0, 1)
    await limits.open()
    assert await limits.take("key") is None
    refused = [await limits.take("key") for _ in range(20)]
    assert all(wait == 1 for wait in refused)
    await asyncio.sleep(0.3)  # past one interval (0.25 s) since the only request that passed
    assert await limits.take("key") is None


async def test_limiters_over_one_database_share_each_keys_budget(limits_in_a_schema: Limits) -> None:
    first, second = limits_in_a_schema(1.0, 3), limits_in_a_schema(1.0, 3)
    await first.open()
    await second.open()
    answers = [await limiter.take("key") for limiter in (first, second, first, second, first)]
    assert answers == [None, None, None, 1, 1]


async def test_leased_tokens_come_out_of_the_shared_budget(limits_in_a_schema: Limits) -> None:
    """With a burst of 20 an instance leases 2 tokens at a time: what one instance holds, the other
    cannot have, and the key never passes more than its burst."""
    first, second = limits_in_a_schema(0.5, 20), limits_in_a_schema(0.5, 20)
    await first.open()
    await second.open()
    assert await first.take("key") is None  # leased 2, one left on `first`
    from_second = [await second.take("key") for _ in range(20)]
    assert from_second == [None] * 18 + [2, 2]
    assert [await first.take("key"), await first.take("key")] == [None, 2]


async def test_without_its_database_an_instance_limits_on_its_own() -> None:
    limits = SharedRateLimits(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres", "gateway", 1.0, 3)
    await limits.open()
    try:
        answers = [await limits.take("key") for _ in range(5)]
    finally:
        await limits.close()
    assert answers == [None, None, None, 1, 1]
