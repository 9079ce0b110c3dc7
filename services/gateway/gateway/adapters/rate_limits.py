"""Per-key rate limits every gateway instance shares, kept in PostgreSQL (docs/security.md: per key, not per
instance — two instances behind a balancer must not give a key twice its rate).

GCRA (the generic cell rate algorithm): a key's row holds the theoretical arrival time of its next
request. A request passes when that time is less than `burst - 1` emission intervals ahead of now, and
then moves it one interval on. One statement on the database's clock (instances' clocks may differ).

An instance asks for a lease of up to a tenth of the burst at once and spends the rest locally: a
busy key costs one statement per lease, not per request, and a key with a burst under 20 is limited
exactly. Leased tokens are never thrown away (that would spend the key's budget for nothing), so an
instance may serve what it leased a while ago: a key passes its limit by at most the leases its
instances hold, a tenth of the burst per request in flight on each.

While the database cannot be asked, an instance limits with its own token buckets and asks again a
little later: callers keep being served, at up to N times the rate with N instances, rather than
refused because the limiter's store is down.
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
LEASE_SHARE_OF_BURST = 0.1

# $1 key id, $2 emission interval (s), $3 tolerance (s), $4 tokens wanted. Grants what the key's
# budget holds now, up to $4 (0: refused, and the row's time stays as it was). The epsilon keeps a
# token that is due exactly now from being lost to rounding.
_TAKE = """
INSERT INTO rate_limits AS r (key_id, arrival_s, asked_s, granted)
VALUES ($1::text, extract(epoch FROM now())::float8 + $4::int * $2::float8,
        extract(epoch FROM now())::float8, $4)
ON CONFLICT (key_id) DO UPDATE SET (granted, arrival_s, asked_s) = (
    SELECT lease.tokens, start.at_s + $2 * lease.tokens, excluded.asked_s
    FROM (SELECT greatest(r.arrival_s, excluded.asked_s) AS at_s) AS start,
    LATERAL (SELECT least($4, greatest(0,
        floor(($3::float8 - (start.at_s - excluded.asked_s)) / $2 + 1e-9) + 1))::int AS tokens) AS lease
)
RETURNING granted, arrival_s, asked_s
"""


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Pool release without asyncpg's reset round trip: the one statement leaves no session state."""


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
        self._lease = max(1, int(burst * LEASE_SHARE_OF_BURST))
        self._leased: dict[str, int] = {}  # key id → tokens this instance leased and has not spent
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
            reset=_keep_session,
            timeout=STATEMENT_TIMEOUT_SECONDS * 2,  # connecting
            server_settings={"search_path": self._schema, "application_name": "gateway-limits"},
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    async def take(self, key_id: str) -> int | None:
        """None when the request may pass; otherwise the seconds to wait (for Retry-After)."""
        leased = self._leased.pop(key_id, 0)
        if leased > 0:
            if leased > 1:
                self._leased[key_id] = leased - 1
            return None
        if self._pool is None or self._clock() < self._ask_database_after:
            return self._local.take(key_id)
        try:
            row = await self._pool.fetchrow(
                _TAKE,
                key_id,
                self._interval_s,
                self._tolerance_s,
                self._lease,
                timeout=STATEMENT_TIMEOUT_SECONDS,
            )
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as error:
            if self._ask_database_after == 0.0:
                log.warning("rate limits fall back to this instance: %s", type(error).__name__)
            self._ask_database_after = self._clock() + LOCAL_ONLY_SECONDS
            return self._local.take(key_id)
        if self._ask_database_after:
            log.info("rate limits are shared again")
            self._ask_database_after = 0.0
        granted = int(row["granted"])
        if granted > 1:  # added: requests in flight may have leased at the same time
            self._leased[key_id] = self._leased.get(key_id, 0) + granted - 1
        if granted > 0:
            return None
        ahead_s = row["arrival_s"] - row["asked_s"]
        return retry_after_seconds(ahead_s - self._tolerance_s)
