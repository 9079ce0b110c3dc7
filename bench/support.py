"""What every benchmark reports with: the median and range of rounds, percentiles of latencies.
(The event generators the benchmarks load are the tests' own: `tests/support/streams.py`.)"""

from __future__ import annotations

import statistics


def spread(values: list[float]) -> str:
    """`median (min to max)`, the way every table of docs/benchmarks.md shows a measurement."""
    return f"{statistics.median(values):,.0f} ({min(values):,.0f} to {max(values):,.0f})"


def percentile(values: list[float], q: float) -> float:
    """The q-quantile by nearest rank (q = 0.99 for p99)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]
