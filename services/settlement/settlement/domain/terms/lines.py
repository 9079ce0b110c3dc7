"""What every term produces: a statement line with its amount, the values it used and its steps."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from settlement.domain.money import CONTEXT, ZERO, decimal_text


@dataclass(frozen=True, slots=True)
class Step:
    """One named intermediate value of a line (a decimal, or a note)."""

    name: str
    value: Decimal | str

    def as_json(self) -> dict[str, str]:
        return {
            "name": self.name,
            "value": decimal_text(self.value) if isinstance(self.value, Decimal) else self.value,
        }


class Steps:
    """Collects named intermediate values while a term computes, in order (the explanation of an
    amount); the line keeps them frozen (`done`)."""

    def __init__(self) -> None:
        self.items: list[Step] = []

    def add(self, name: str, value: Decimal) -> Decimal:
        self.items.append(Step(name, value))
        return value

    def note(self, name: str, text: str) -> None:
        self.items.append(Step(name, text))

    def done(self) -> tuple[Step, ...]:
        return tuple(self.items)


@dataclass(frozen=True, slots=True)
class Line:
    """A computed statement line: frozen once made; its JSON is the statement's `lines[]` item."""

    term_id: str
    kind: str
    amount: Decimal  # rounded to the currency's minor unit
    inputs: dict[str, Any]
    steps: tuple[Step, ...]
    reason: str | None = None
    detail: str | None = None
    unrounded: Decimal = field(default=ZERO)
    complete: bool = True  # every value it rests on is there and every feed behind it is complete
    # KPI readings it used that are still within their KPI's maturation: (KPI label, first mature day).
    maturing: tuple[tuple[str, date], ...] = ()

    def as_json(self) -> dict[str, Any]:
        line: dict[str, Any] = {
            "term_id": self.term_id,
            "kind": self.kind,
            "amount": decimal_text(self.amount),
            "inputs": self.inputs,
            "steps": [step.as_json() for step in self.steps],
            "complete": self.complete,
        }
        if self.reason:
            line["reason"] = self.reason
        if self.detail:
            line["detail"] = self.detail
        return line


@dataclass(frozen=True, slots=True)
class Outcome:
    """A term's unrounded amount, or zero with the reason a gate was not met."""

    amount: Decimal
    reason: str | None = None
    detail: str | None = None


def zero(reason: str, detail: str | None = None) -> Outcome:
    return Outcome(ZERO, reason, detail)


def div(numerator: Decimal, denominator: Decimal) -> Decimal:
    return CONTEXT.divide(numerator, denominator)


def mul(*factors: Decimal) -> Decimal:
    result = Decimal(1)
    for factor in factors:
        result = CONTEXT.multiply(result, factor)
    return result
