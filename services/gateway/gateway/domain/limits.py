"""Token buckets: a sustained rate and the burst above it, kept in this process.

Two uses. Per-key rate limits go through PostgreSQL so that every instance spends from the same budget
(`gateway.adapters.rate_limits`); these buckets are what an instance falls back to while the database
cannot be asked. Failed authentication is limited per client address with them directly
(`gateway.handlers`): only failures spend, a client that mistypes a key now and then never notices, one
that guesses keys is refused before any lookup (docs/security.md); a guess costs the same on every
instance, so nothing shared is needed, and the number of addresses kept is bounded.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


def retry_after_seconds(wait_s: float) -> int:
    """Whole seconds for `Retry-After`, never 0: a client told 0 would retry at once and be refused."""
    return max(1, math.ceil(wait_s))


class TokenBuckets:
    def __init__(
        self,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_buckets: int | None = None,
    ) -> None:
        self._rate, self._burst, self._clock = rate, float(burst), clock
        self._max = max_buckets  # past it the buckets start afresh: a flood of names grows nothing
        self._buckets: dict[str, tuple[float, float]] = {}  # name → (tokens, last refill)

    def _tokens(self, name: str, now: float) -> float:
        tokens, last = self._buckets.get(name, (self._burst, now))
        return min(self._burst, tokens + (now - last) * self._rate)

    def wait(self, name: str) -> int | None:
        """None when a token is there; otherwise the seconds until one is (for Retry-After)."""
        tokens = self._tokens(name, self._clock())
        return None if tokens >= 1 else retry_after_seconds((1 - tokens) / self._rate)

    def spend(self, name: str) -> None:
        """Take a token whether or not one is there (an empty bucket stays empty)."""
        now = self._clock()
        if self._max is not None and name not in self._buckets and len(self._buckets) >= self._max:
            self._buckets.clear()
        self._buckets[name] = (max(0.0, self._tokens(name, now) - 1), now)

    def take(self, name: str) -> int | None:
        """None when the request may pass (a token spent); otherwise the seconds to wait."""
        wait = self.wait(name)
        if wait is None:
            self.spend(name)
        return wait
