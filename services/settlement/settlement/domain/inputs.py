"""Period inputs checked by use (docs/settlement.md): an input is checked against every term parameter
that reads it when it is written, so a quality score of "89.34" is refused, not paid.

Each use names the term parameter by its JSON path in the contract (`$.terms[0].quality_score`) and the
rule the parameter needs: a fraction in [0, 1] (rates, shares, scores), a positive number (a
benchmark, a target a deviation is relative to), a positive whole number (a population), a
non-negative amount.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal

from settlement.domain.contract import (
    Cap,
    Contract,
    KpiIncentive,
    MsspScale,
    RiskCorridor,
    SharedSavings,
    SlaCredit,
)
from settlement.domain.sources import InputSource
from vr_shared.events.validation import FieldError


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    holds: Callable[[Decimal], bool]
    message: str


FRACTION = Rule("fraction", lambda v: 0 <= v <= 1, 'a fraction between "0" and "1" ("0.02" is 2 %)')
POSITIVE = Rule("positive", lambda v: v > 0, "greater than zero")
POPULATION = Rule("population", lambda v: v > 0 and v == v.to_integral_value(), "a positive whole number")
NON_NEGATIVE = Rule("non_negative", lambda v: v >= 0, "not negative")
ANY = Rule("any", lambda _: True, "")


@dataclass(frozen=True, slots=True)
class InputUse:
    parameter: str  # JSON path of the term parameter in the contract
    rule: Rule


def input_uses(contract: Contract) -> dict[str, list[InputUse]]:
    """For each input name, every term parameter that reads it and the rule that parameter needs."""
    uses: dict[str, list[InputUse]] = defaultdict(list)
    for index, term in enumerate(contract.terms):
        for path, param, rule in _parameters(term, f"$.terms[{index}]"):
            if isinstance(param, InputSource):
                uses[param.input].append(InputUse(path, rule))
    return dict(uses)


def input_errors(contract: Contract, inputs: dict[str, Decimal]) -> list[FieldError]:
    """An error per input and parameter whose rule the value breaks, at the input's path."""
    uses = input_uses(contract)
    return [
        FieldError(
            f"$.{name}",
            f"{value} is used as {use.parameter}, which must be {use.rule.message}",
            f"input_{use.rule.name}",
        )
        for name, value in sorted(inputs.items())
        for use in uses.get(name, ())
        if not use.rule.holds(value)
    ]


Parameter = tuple[str, object, Rule]


def _parameters(term: object, at: str) -> Iterator[Parameter]:
    match term:
        case SharedSavings():
            yield f"{at}.expenditure", term.expenditure, NON_NEGATIVE
            yield f"{at}.benchmark", term.benchmark, POSITIVE
            yield from _minimum_rate(f"{at}.min_savings_rate", term.min_savings_rate)
            yield from _minimum_rate(f"{at}.min_loss_rate", term.min_loss_rate)
            yield f"{at}.savings_rate", term.savings_rate, FRACTION
            yield f"{at}.quality_score", term.quality_score, FRACTION
            yield f"{at}.loss_rate", term.loss_rate, FRACTION
            yield from _caps(f"{at}.savings_caps", term.savings_caps)
            yield from _caps(f"{at}.loss_caps", term.loss_caps)
        case KpiIncentive():
            yield f"{at}.kpi", term.kpi, ANY
            for name in ("baseline", "target", "floor"):
                yield f"{at}.{name}", getattr(term, name), ANY
            yield f"{at}.max_reward", term.max_reward, NON_NEGATIVE
            yield f"{at}.max_penalty", term.max_penalty, NON_NEGATIVE
        case SlaCredit():
            yield f"{at}.kpi", term.kpi, ANY
        case RiskCorridor():
            yield f"{at}.actual", term.actual, NON_NEGATIVE
            yield f"{at}.target", term.target, POSITIVE


def _minimum_rate(at: str, param: object) -> Iterator[Parameter]:
    if isinstance(param, MsspScale):
        yield f"{at}.mssp_one_sided_scale", param.mssp_one_sided_scale, POPULATION
    else:
        yield at, param, FRACTION


def _caps(at: str, caps: list[Cap]) -> Iterator[Parameter]:
    for i, cap in enumerate(caps):
        yield f"{at}[{i}].of", cap.of, NON_NEGATIVE
