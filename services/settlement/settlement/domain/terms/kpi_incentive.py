"""`kpi_incentive`: a reward or penalty driven by one KPI (docs/contracts.md).

`linear`: the reward grows linearly from the baseline to the target and is capped there; the penalty
grows linearly from the baseline to the floor and is capped there. `tiers`: the amount of the most
demanding tier reached (a threshold counts as reached when the value equals it); amounts may be
negative (penalties), and a value short of every tier pays the first tier's penalty if it has one. Below
`min_denominator` the term pays nothing (`insufficient_sample`).
"""

from __future__ import annotations

from decimal import Decimal

from settlement.domain.contract import KpiIncentive
from settlement.domain.money import ONE, ZERO
from settlement.domain.periods import Period
from settlement.domain.sources import KpiSource, Values
from settlement.domain.terms.lines import Outcome, Steps, div, mul, zero


def compute(term: KpiIncentive, values: Values, period: Period, steps: Steps) -> Outcome:
    source = term.source
    if isinstance(source, KpiSource):
        reading = values.reading("kpi", source, period.start, period.end)
        if term.min_denominator is not None and (reading.denominator or ZERO) < term.min_denominator:
            return zero(
                "insufficient_sample",
                f"denominator {reading.denominator or 0} is below min_denominator {term.min_denominator}",
            )
    value = steps.add("kpi_value", values.number("kpi", source, period.start, period.end))
    higher = term.direction == "higher_is_better"
    if term.curve == "tiers":
        return _tiers(term, value, higher, steps)
    return _linear(term, value, higher, values, period, steps)


def _tiers(term: KpiIncentive, value: Decimal, higher: bool, steps: Steps) -> Outcome:
    tiers = term.tiers or []
    reached = [t for t in tiers if (value >= t.threshold if higher else value <= t.threshold)]
    if not reached:
        if tiers and tiers[0].amount < 0:
            # Short of the least demanding tier, a penalty tier still applies: a worse KPI never pays more.
            steps.note("tier_threshold", "below the first tier")
            return Outcome(steps.add("amount", tiers[0].amount))
        return zero("no_tier_reached", "the KPI value reaches no tier")
    tier = reached[-1]  # tiers are validated in order of increasing demand
    steps.add("tier_threshold", tier.threshold)
    return Outcome(steps.add("amount", tier.amount))


def _linear(
    term: KpiIncentive, value: Decimal, higher: bool, values: Values, period: Period, steps: Steps
) -> Outcome:
    def number(name: str, param: object) -> Decimal:
        return values.number(name, param, period.start, period.end)  # type: ignore[arg-type]

    baseline = number("baseline", term.baseline)
    improvement = steps.add("improvement", value - baseline if higher else baseline - value)
    if improvement >= 0:
        target = number("target", term.target)
        span = target - baseline if higher else baseline - target
        if span <= 0:
            return zero("invalid_parameters", "the target is not beyond the baseline in the KPI's direction")
        progress = steps.add("progress", min(div(improvement, span), ONE))
        return Outcome(steps.add("amount", mul(number("max_reward", term.max_reward), progress)))
    if term.floor is None:
        return zero("below_baseline", "the KPI is below its baseline and the term has no penalty")
    floor = number("floor", term.floor)
    span = baseline - floor if higher else floor - baseline
    if span <= 0:
        return zero("invalid_parameters", "the floor is not beyond the baseline against the KPI's direction")
    shortfall = steps.add("shortfall", min(div(-improvement, span), ONE))
    return Outcome(steps.add("amount", -mul(number("max_penalty", term.max_penalty), shortfall)))
