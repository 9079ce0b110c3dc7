"""The MSSP one-sided minimum savings rate by assigned population, 42 CFR 425.604(b).

Within a band the rate falls linearly from its value at the band's low end to its value at the band's
top (e.g. 20,000 → 2.5 %, 49,999 → 2.2 %); 60,000 and more: 2.0 %. Below 5,000 the program has no
rate (an ACO needs 5,000 assigned beneficiaries), so no rate is returned.
"""

from __future__ import annotations

from decimal import Decimal

from settlement.domain.money import CONTEXT

# (low, high, rate at low, rate at high), rates in percent, as published.
BANDS: tuple[tuple[int, int, Decimal, Decimal], ...] = tuple(
    (low, high, Decimal(at_low), Decimal(at_high))
    for low, high, at_low, at_high in (
        (5_000, 5_999, "3.9", "3.6"),
        (6_000, 6_999, "3.6", "3.4"),
        (7_000, 7_999, "3.4", "3.2"),
        (8_000, 8_999, "3.2", "3.1"),
        (9_000, 9_999, "3.1", "3.0"),
        (10_000, 14_999, "3.0", "2.7"),
        (15_000, 19_999, "2.7", "2.5"),
        (20_000, 49_999, "2.5", "2.2"),
        (50_000, 59_999, "2.2", "2.0"),
    )
)
FLOOR_PERCENT = Decimal("2.0")
MIN_POPULATION = BANDS[0][0]


def one_sided_msr(population: Decimal) -> Decimal | None:
    """The minimum savings rate as a fraction (0.030103 for 9,896), or None below 5,000."""
    if population < MIN_POPULATION:
        return None
    percent = FLOOR_PERCENT
    for low, high, at_low, at_high in BANDS:
        if population <= high:
            position = CONTEXT.divide(population - low, Decimal(high - low))
            percent = at_low - CONTEXT.multiply(at_low - at_high, min(position, Decimal(1)))
            break
        if population < high + 1:  # between a band's top and the next band's low end (fractional input)
            percent = at_high
            break
    return CONTEXT.divide(percent, Decimal(100))
