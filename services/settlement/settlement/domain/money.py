"""Decimal arithmetic for money: one context for every computation, one rounding, at the line amount.

docs/settlement.md: money is computed with `decimal.Decimal` and rounded once, at the line amount,
half-even to the currency's minor unit. Intermediate steps keep the context's full precision.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal

# 28 significant digits (Python's default), fixed here so a statement recomputed anywhere is identical.
CONTEXT = Context(prec=28, rounding=ROUND_HALF_EVEN)
ZERO = Decimal(0)
ONE = Decimal(1)

# ISO 4217 minor units of the currencies a contract may use; anything else is refused at write time.
MINOR_UNITS: dict[str, int] = {
    **dict.fromkeys(
        (
            "USD",
            "EUR",
            "GBP",
            "CAD",
            "AUD",
            "NZD",
            "CHF",
            "SEK",
            "NOK",
            "DKK",
            "PLN",
            "CZK",
            "HUF",
            "MXN",
            "BRL",
            "INR",
            "SGD",
            "HKD",
            "ZAR",
            "ILS",
            "AED",
            "SAR",
            "CNY",
            "TRY",
            "RON",
            "PHP",
            "THB",
            "MYR",
        ),
        2,
    ),
    **dict.fromkeys(("JPY", "KRW", "CLP", "ISK", "VND", "UGX", "PYG"), 0),
    **dict.fromkeys(("BHD", "KWD", "OMR", "JOD", "TND", "IQD", "LYD"), 3),
}


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Half-even to the currency's minor unit (banker's rounding, as docs/settlement.md names it)."""
    return amount.quantize(
        Decimal(1).scaleb(-MINOR_UNITS[currency]), rounding=ROUND_HALF_EVEN, context=CONTEXT
    )


def decimal_text(value: Decimal) -> str:
    """A decimal as JSON text: plain notation, never an exponent."""
    return format(value, "f")
