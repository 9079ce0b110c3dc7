"""Per-key rate limits every gateway instance shares, kept in PostgreSQL (SPEC §7: per key, not per
instance — two instances behind a balancer must not give a key twice its rate).

GCRA (the generic cell rate algorithm): a key's row holds the theoretical arrival time of its next
request. A request passes when that time is less than `burst - 1` emission intervals ahead of now, and
then moves it one interval on. One statement per request, on the database's clock (instances' clocks
may differ), in its own implicit transaction. While the database cannot be asked, an instance limits
with its own token buckets and asks again a little later: callers keep being served, at up to N times
the rate with N instances, rather than refused because the limiter's store is down.

The statement goes through a small asyncpg pool of its own: it runs on every request, and SQLAlchemy's
checkout (with its liveness ping) would triple its cost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import asyncpg

from gateway.domain.limits import TokenBuckets, retry_after_seconds
from vr_shared.db import plain_url

log = logging.getLogger(__name__)

# After a failed statement, how long an instance limits on its own before it asks the database again
# (a database that hangs would otherwise hold every request for the timeout below).
LOCAL_ONLY_SECONDS = 2.0
STATEMENT_TIMEOUT_SECONDS = 1.0

# $1 key id, $2 emission interval (s), $3 tolerance (s). `allowed` and `asked_s` record the last answer
# so that one statement both decides and returns what Retry-After needs.
_TAKE = """
INSERT INTO rate_limits AS r (key_id, arrival_s, asked_s, allowed)
VALUES ($1, extract(epoch FROM now())::float8 + $2, extract(epoch FROM now())::float8, true)
ON CONFLICT (key_id) DO UPDATE SET
    arrival_s = CASE WHEN greatest(r.arrival_s, excluded.asked_s) - excluded.asked_s <= $3
                     THEN greatest(r.arrival_s, excluded.asked_s) + $2
                     ELSE r.arrival_s END,
    asked_s = excluded.asked_s,
    allowed = greatest(r.arrival_s, excluded.asked_s) - excluded.asked_s <= $3
RETURNING allowed, arrival_s, asked_s
"""


class SharedRateLimits:
    def __init__(
        self,
        database_url: str,
        schema: str,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url, self._schema = plain_url(database_url), schema
        self._interval_s, self._tolerance_s = 1.0 / rate, (burst - 1) / rate
        self._local = TokenBuckets(rate, burst, clock)
        self._clock = clock
        self._ask_database_after = 0.0
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        # No connection yet (min_size=0): they are made on the first requests, so a database that is
        # down at this moment only means local limits until it is back.
        self._pool = await asyncpg.create_pool(
            self._url,
            min_size=0,
            max_size=4,
            timeout=STATEMENT_TIMEOUT_SECONDS * 2,  # connecting
            server_settings={"search_path": self._schema, "application_name": "gateway-limits"},
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    async def take(self, key_id: str) -> int | None:
        """None when the request may pass; otherwise the seconds to wait (for Retry-After)."""
        if self._pool is None or self._clock() < self._ask_database_after:
            return self._local.take(key_id)
        try:
            row = await self._pool.fetchrow(
                _TAKE, key_id, self._interval_s, self._tolerance_s, timeout=STATEMENT_TIMEOUT_SECONDS
            )
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as error:
            if self._ask_database_after == 0.0:
                log.warning("rate limits fall back to this instance: %s", type(error).__name__)
            self._ask_database_after = self._clock() + LOCAL_ONLY_SECONDS
            return self._local.take(key_id)
        if self._ask_database_after:
            log.info("rate limits are shared again")
            self._ask_database_after = 0.0
        if row["allowed"]:
            return None
        ahead_s = max(row["arrival_s"], row["asked_s"]) - row["asked_s"]
        return retry_after_seconds(ahead_s - self._tolerance_s)
