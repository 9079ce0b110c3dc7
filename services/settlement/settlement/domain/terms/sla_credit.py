"""`sla_credit`: service credits month by month (docs/contracts.md).

Each calendar month of the period is evaluated on its own: the credit is the rate of the lowest tier
whose `below` the month's value falls under, times the monthly fee. The term owes the sum (negative).
A month without a value makes the line 0 with reason `no_kpi_data`: it is not a month of full service.
"""

from __future__ import annotations

from decimal import Decimal

from settlement.domain.contract import SlaCredit
from settlement.domain.money import ZERO
from settlement.domain.periods import Period
from settlement.domain.sources import KpiSource, MissingValue, Values
from settlement.domain.terms.lines import Outcome, Steps, mul


def compute(
    term: SlaCredit, values: Values, period: Period, steps: Steps, fees: dict[str, Decimal]
) -> Outcome:
    fee = steps.add("monthly_fee", fees[term.fee])
    credits = ZERO
    for month in period.months():
        source = term.source
        if isinstance(source, KpiSource):
            reading = values.reading(month.id, source, month.start, month.end)
            if reading.value is None:  # a month without data is never a month without credit
                raise MissingValue("no_kpi_data", f"{source.label()} has no data for {month.id}")
            value = reading.value
        else:
            value = values.number(month.id, source, month.start, month.end)
        steps.add(f"{month.id}.value", value)
        rate = credit_rate(term, value)
        steps.add(f"{month.id}.credit_rate", rate)
        credits += steps.add(f"{month.id}.credit", mul(rate, fee))
    steps.add("credits", credits)
    return Outcome(steps.add("amount", -credits))


def credit_rate(term: SlaCredit, value: Decimal) -> Decimal:
    """Tiers are validated from the highest `below` to the lowest: the last one the value is under."""
    rate = ZERO
    for tier in term.tiers:
        if value < tier.below:
            rate = tier.credit_rate
    return rate
