"""Credit amounts: exact decimals outside, integers of micro-credits inside.

One credit is 1,000,000 micro-credits. Amounts come in as decimal strings or JSON numbers and go
out as canonical decimal strings ("12.5", "0.0027", "5"). No float ever holds an amount: a float
that arrives from JSON is read through its shortest decimal representation.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from creditpool.domain.errors import InvalidAmount

MICROS_PER_CREDIT = 1_000_000
MAX_CREDITS = 1_000_000_000
MAX_MICROS = MAX_CREDITS * MICROS_PER_CREDIT

# Plain decimal notation only: no exponent, no sign other than a leading minus, no spaces.
_DECIMAL_TEXT = re.compile(r"-?([0-9]+(\.[0-9]*)?|\.[0-9]+)")
_MAX_TEXT_LENGTH = 40


def parse_credits(value: object, *, allow_zero: bool = False, allow_negative: bool = False) -> int:
    """Return the micro-credits of a decimal string or number, or raise InvalidAmount."""
    number = _to_decimal(value)
    if not number.is_finite():
        raise InvalidAmount("an amount must be a finite number")
    if number < 0 and not allow_negative:
        raise InvalidAmount("an amount cannot be negative")
    if number == 0 and not (allow_zero or allow_negative):
        raise InvalidAmount("an amount must be greater than zero")
    # copy_abs, not abs(): abs() rounds to the context's 28 digits, copy_abs is exact.
    magnitude = number.copy_abs()
    if magnitude > MAX_CREDITS:
        raise InvalidAmount(f"an amount cannot exceed {MAX_CREDITS:,} credits")
    micros = _exact_micros(magnitude)
    return -micros if number < 0 else micros


def _exact_micros(number: Decimal) -> int:
    # Integer arithmetic on the decimal's own digits: a Decimal context would round first.
    _, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)
    coefficient = int("".join(map(str, digits)) or "0")
    shift = exponent + 6  # micro-credits are 10**-6
    if shift >= 0:
        return coefficient * int(10**shift)
    whole, rest = divmod(coefficient, int(10 ** (-shift)))
    if rest:
        raise InvalidAmount("an amount has at most 6 decimal places")
    return whole


def _to_decimal(value: object) -> Decimal:
    # bool is an int in Python; `true` is never an amount.
    if isinstance(value, bool):
        raise InvalidAmount("an amount must be a number, not a boolean")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        # repr gives the shortest text that reads back as this float: 0.1 -> "0.1".
        return Decimal(repr(value))
    if isinstance(value, Decimal):
        return value
    if isinstance(value, str):
        if len(value) > _MAX_TEXT_LENGTH or not _DECIMAL_TEXT.fullmatch(value):
            raise InvalidAmount(f"{value[:_MAX_TEXT_LENGTH]!r} is not a decimal number")
        try:
            return Decimal(value)
        except InvalidOperation as error:  # pragma: no cover - the pattern already excludes it
            raise InvalidAmount(f"{value!r} is not a decimal number") from error
    raise InvalidAmount("an amount must be a decimal string or a number")


def format_credits(micros: int) -> str:
    """Return the canonical decimal text of an amount of micro-credits."""
    sign = "-" if micros < 0 else ""
    whole, fraction = divmod(abs(micros), MICROS_PER_CREDIT)
    if fraction == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{fraction:06d}".rstrip("0")


def credits(value: str | int) -> int:
    """Return micro-credits for a literal known to be valid, e.g. `credits("0.1")`; for code."""
    return parse_credits(value, allow_zero=True)
