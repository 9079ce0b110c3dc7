"""Per-key rate limits: sustained requests per second and the burst above it.

`TokenBuckets` keeps the buckets in this process. The gateway limits through PostgreSQL so that every
instance spends from the same budget (`gateway.adapters.rate_limits`); these buckets are what an
instance falls back to while the database cannot be asked.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


def retry_after_seconds(wait_s: float) -> int:
    """Whole seconds for `Retry-After`, never 0: a client told 0 would retry at once and be refused."""
    return max(1, math.ceil(wait_s))


class TokenBuckets:
    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate, self._burst, self._clock = rate, float(burst), clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key id → (tokens, last refill)

    def take(self, key_id: str) -> int | None:
        """None when the request may pass; otherwise the seconds to wait (for Retry-After)."""
        now = self._clock()
        tokens, last = self._buckets.get(key_id, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        if tokens >= 1:
            self._buckets[key_id] = (tokens - 1, now)
            return None
        self._buckets[key_id] = (tokens, now)
        return retry_after_seconds((1 - tokens) / self._rate)
