"""Failed authentication limited per client address (docs/security.md).

A token bucket per address, filled with `per_minute` failures and refilled at that rate: a client that
mistypes a key now and then never notices; one that guesses keys is answered 429 after its bucket is
empty, before any lookup. Kept per gateway instance, in memory (a guess costs the attacker the same on
every instance; nothing shared is needed for that), bounded in size.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

_MAX_ADDRESSES = 100_000


class FailureLimiter:
    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._capacity = float(per_minute)
        self._refill_per_second = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # address → (tokens, at)

    def _tokens(self, address: str, now: float) -> float:
        tokens, at = self._buckets.get(address, (self._capacity, now))
        return min(self._capacity, tokens + (now - at) * self._refill_per_second)

    def wait(self, address: str) -> int | None:
        """Seconds until `address` may try again, or None when it may now."""
        tokens = self._tokens(address, self._clock())
        if tokens >= 1.0:
            return None
        return max(1, math.ceil((1.0 - tokens) / self._refill_per_second))

    def failed(self, address: str) -> None:
        now = self._clock()
        if len(self._buckets) >= _MAX_ADDRESSES:
            self._buckets.clear()
        self._buckets[address] = (max(0.0, self._tokens(address, now) - 1.0), now)
