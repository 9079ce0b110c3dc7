"""`risk_corridor`: marginal sharing of the deviation from a target, band by band (docs/contracts.md).

Deviation d = |target − actual| / target. Each band [from, to) shares its `share` of the part of d
inside it, times the target; savings (actual below target) are owed to the vendor, overruns by it.
Modelled on the ACA risk corridors, 42 U.S.C. 18062(b).
"""

from __future__ import annotations

from decimal import Decimal

from settlement.domain.contract import RiskCorridor
from settlement.domain.money import ZERO
from settlement.domain.periods import Period
from settlement.domain.sources import Values
from settlement.domain.terms.lines import Outcome, Steps, div, mul, zero


def compute(term: RiskCorridor, values: Values, period: Period, steps: Steps) -> Outcome:
    target = values.number("target", term.target, period.start, period.end)
    actual = values.number("actual", term.actual, period.start, period.end)
    if target <= 0:
        return zero("invalid_target", "the target must be positive")
    deviation = steps.add("deviation", div(abs(target - actual), target))
    shared = ZERO
    for index, band in enumerate(term.bands):
        top = deviation if band.to is None else min(deviation, band.to)
        inside: Decimal = max(top - band.from_, ZERO)
        shared += steps.add(f"bands[{index}].shared", mul(inside, band.share, target))
    steps.add("shared", shared)
    if shared == 0:
        return zero("within_corridor", "the deviation is inside the corridor's first band")
    return Outcome(steps.add("amount", shared if actual < target else -shared))
