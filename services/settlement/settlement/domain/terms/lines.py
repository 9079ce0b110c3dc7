"""What every term produces: a statement line with its amount, the values it used and its steps."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from settlement.domain.money import CONTEXT, ZERO, decimal_text


class Steps:
    """Named intermediate values, in the order they were computed (the explanation of an amount)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, Decimal | str]] = []

    def add(self, name: str, value: Decimal) -> Decimal:
        self.items.append((name, value))
        return value

    def note(self, name: str, text: str) -> None:
        self.items.append((name, text))

    def as_json(self) -> list[dict[str, str]]:
        return [{"name": n, "value": decimal_text(v) if isinstance(v, Decimal) else v} for n, v in self.items]


@dataclass
class Line:
    term_id: str
    kind: str
    amount: Decimal  # rounded to the currency's minor unit
    inputs: dict[str, Any]
    steps: Steps
    reason: str | None = None
    detail: str | None = None
    unrounded: Decimal = field(default=ZERO)
    complete: bool = True  # every value it rests on is there and every feed behind it is complete

    def as_json(self) -> dict[str, Any]:
        line: dict[str, Any] = {
            "term_id": self.term_id,
            "kind": self.kind,
            "amount": decimal_text(self.amount),
            "inputs": self.inputs,
            "steps": self.steps.as_json(),
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
