"""`shared_savings`: the Medicare Shared Savings Program method, generalised (docs/contracts.md, 42 CFR 425).

Savings S = benchmark − expenditure, savings rate r = S / benchmark. Savings are shared once r reaches
the minimum savings rate (MSR), at `savings_rate × quality_score`, on all of S (`first_dollar`) or on
the part beyond MSR × benchmark (`above_threshold`); the smallest cap applies, before or after the rate
(`cap_order`); a payment reduction (e.g. sequestration) comes off last. Losses are owed only when the
term has a `loss_rate` and the loss rate reaches the minimum loss rate (MLR, default the MSR).
"""

from __future__ import annotations

from decimal import Decimal

from settlement.domain.contract import Cap, MsspScale, OneMinusFinalRate, SharedSavings
from settlement.domain.money import ONE, ZERO
from settlement.domain.mssp import MIN_POPULATION, one_sided_msr
from settlement.domain.periods import Period
from settlement.domain.sources import MissingValue, Values
from settlement.domain.terms.lines import Outcome, Steps, div, mul, zero


def compute(term: SharedSavings, values: Values, period: Period, steps: Steps) -> Outcome:
    def number(name: str, param: object) -> Decimal:
        return values.number(name, param, period.start, period.end)  # type: ignore[arg-type]

    benchmark = number("benchmark", term.benchmark)
    expenditure = number("expenditure", term.expenditure)
    if benchmark <= 0:
        return zero("invalid_benchmark", "the benchmark must be positive")
    savings = steps.add("savings", benchmark - expenditure)
    rate = steps.add("savings_rate", div(savings, benchmark))
    msr = steps.add(
        "min_savings_rate", _minimum_rate("min_savings_rate", term.min_savings_rate, values, period)
    )
    quality = number("quality_score", term.quality_score) if term.quality_score is not None else ONE
    if term.quality_score is not None:
        steps.add("quality_score", quality)
    gate_met = term.quality_gate is None or quality >= term.quality_gate
    final_rate = steps.add(
        "final_sharing_rate", mul(number("savings_rate", term.savings_rate), quality) if gate_met else ZERO
    )
    if savings > 0:
        if rate < msr:
            return zero("below_minimum_savings_rate", "the savings rate is below the minimum savings rate")
        if not gate_met:
            return zero("quality_gate_not_met", "the quality score is below the quality gate")
        return _shared_savings(term, savings, benchmark, msr, final_rate, values, period, steps)
    if savings < 0:
        return _owed_losses(term, -savings, benchmark, msr, final_rate, values, period, steps)
    return zero("no_savings", "expenditure equals the benchmark")


def _shared_savings(
    term: SharedSavings,
    savings: Decimal,
    benchmark: Decimal,
    msr: Decimal,
    final_rate: Decimal,
    values: Values,
    period: Period,
    steps: Steps,
) -> Outcome:
    basis = savings if term.basis == "first_dollar" else savings - mul(msr, benchmark)
    shareable = steps.add("shareable_savings", basis)
    cap = _smallest_cap("savings_caps", term.savings_caps, benchmark, values, period, steps)
    shared = _apply_rate_and_cap(term, shareable, final_rate, cap, steps)
    if term.savings_payment_reduction:
        reduction = steps.add("payment_reduction", mul(shared, term.savings_payment_reduction))
        shared -= reduction
    return Outcome(steps.add("amount", shared))


def _owed_losses(
    term: SharedSavings,
    losses: Decimal,
    benchmark: Decimal,
    msr: Decimal,
    final_rate: Decimal,
    values: Values,
    period: Period,
    steps: Steps,
) -> Outcome:
    if term.loss_rate is None:
        return zero("one_sided", "the term is one-sided: losses are not owed")
    mlr = (
        msr
        if term.min_loss_rate is None
        else _minimum_rate("min_loss_rate", term.min_loss_rate, values, period)
    )
    steps.add("min_loss_rate", mlr)
    if div(losses, benchmark) < mlr:
        return zero("below_minimum_loss_rate", "the loss rate is below the minimum loss rate")
    basis = losses if term.basis == "first_dollar" else losses - mul(mlr, benchmark)
    shareable = steps.add("shareable_losses", basis)
    if isinstance(term.loss_rate, OneMinusFinalRate):
        bounds = term.loss_rate.one_minus_final_savings_rate
        loss_rate = min(max(ONE - final_rate, bounds.min), bounds.max)
    else:
        loss_rate = values.number("loss_rate", term.loss_rate, period.start, period.end)
    steps.add("loss_sharing_rate", loss_rate)
    cap = _smallest_cap("loss_caps", term.loss_caps, benchmark, values, period, steps)
    owed = _apply_rate_and_cap(term, shareable, loss_rate, cap, steps)
    return Outcome(steps.add("amount", -owed))


def _apply_rate_and_cap(
    term: SharedSavings, shareable: Decimal, rate: Decimal, cap: Decimal | None, steps: Steps
) -> Decimal:
    if term.cap_order == "cap_then_rate":
        capped = steps.add("capped_before_rate", shareable if cap is None else min(shareable, cap))
        return steps.add("shared_after_caps", mul(capped, rate))
    shared = steps.add("shared_before_caps", mul(shareable, rate))
    return steps.add("shared_after_caps", shared if cap is None else min(shared, cap))


def _smallest_cap(
    name: str, caps: list[Cap], benchmark: Decimal, values: Values, period: Period, steps: Steps
) -> Decimal | None:
    """Each cap is a rate of the benchmark or of another value; the smallest one binds."""
    amounts = []
    for index, cap in enumerate(caps):
        base = (
            benchmark
            if cap.of == "benchmark"
            else values.number(f"{name}[{index}].of", cap.of, period.start, period.end)
        )
        amounts.append(mul(cap.rate, base))
    return steps.add("cap", min(amounts)) if amounts else None


def _minimum_rate(name: str, rule: object, values: Values, period: Period) -> Decimal:
    if isinstance(rule, MsspScale):
        population = values.number("population", rule.mssp_one_sided_scale, period.start, period.end)
        rate = one_sided_msr(population)
        if rate is None:
            raise MissingValue(
                "population_below_scale",
                f"the MSSP scale starts at {MIN_POPULATION:,} assigned beneficiaries ({name})",
            )
        return rate
    return values.number(name, rule, period.start, period.end)  # type: ignore[arg-type]
