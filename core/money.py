"""Exact money: Decimal at the edges, integer minor units inside. Never a float."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

# ASCII digits only: Decimal() alone would also take "1_000", "+1", " 1 ", "1e3" and other scripts' digits.
DECIMAL_TEXT = re.compile(r"[0-9]+(?:\.[0-9]+)?")
DECIMALS = {"USD": 2, "USDC": 6}
MAX_AMOUNT = Decimal("1000000000")  # one billion: larger is a typo or an attack, not a contract
QUANTUM = {currency: Decimal(1).scaleb(-places) for currency, places in DECIMALS.items()}  # 0.01, 0.000001


class BadAmount(ValueError):
    """Not a positive, finite amount with at most the currency's decimals."""


def parse_amount(value: object, currency: str = "USDC", *, allow_zero: bool = False) -> Decimal:
    """A decimal string (`1250.00`) or JSON number → exact Decimal; refuses floats' artefacts beyond the decimals."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        raise BadAmount("an amount must be a decimal string or a number")
    if isinstance(value, str) and not DECIMAL_TEXT.fullmatch(value):
        raise BadAmount("an amount string must be ASCII digits with an optional decimal point, like 1250.00")
    try:
        amount = value if isinstance(value, Decimal) else Decimal(value if isinstance(value, str) else str(value))
    except (InvalidOperation, ValueError) as exc:  # ValueError: an int too long to print
        raise BadAmount("not a decimal number") from exc
    if not amount.is_finite():
        raise BadAmount("an amount must be finite")
    if amount < 0 or (amount == 0 and not allow_zero):
        raise BadAmount("an amount must be greater than zero")
    if amount > MAX_AMOUNT:
        raise BadAmount(f"an amount must not exceed {MAX_AMOUNT}")
    if amount != amount.quantize(QUANTUM[currency], rounding=ROUND_HALF_EVEN):
        raise BadAmount(f"{currency} amounts have at most {DECIMALS[currency]} decimals")
    return amount


def to_minor(amount: Decimal, currency: str = "USDC") -> int:
    return int(amount.scaleb(DECIMALS[currency]))


def from_minor(units: int, currency: str = "USDC") -> Decimal:
    return Decimal(units).scaleb(-DECIMALS[currency])


def format_amount(amount: Decimal) -> str:
    """At least two decimals, more only when they carry value: `1250.00`, `12.345678`."""
    text = f"{amount:f}"
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0")
    return f"{whole}.{frac.ljust(2, '0')}"


def format_minor(units: int, currency: str = "USDC") -> str:
    """`1250000000` USDC minor units → `"1250.00"`.

    Two-decimal amounts take a shortcut to the same text (both decimals always shown): a board page formats
    two a row, and the Decimal round trip cost several microseconds each.
    """
    if DECIMALS[currency] == 2 and units >= 0:
        whole, cents = divmod(units, 100)
        return f"{whole}.{cents:02d}"
    return format_amount(from_minor(units, currency))
