"""Per-key rate limits: a token bucket per key (rate per second, burst), in this process.

Each gateway instance limits on its own; with N instances behind a balancer a key gets up to N times
the rate — set the rate per instance accordingly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


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
        return max(1, math.ceil((1 - tokens) / self._rate))
