"""Balances and running totals that never overflow, and sums of them that are exact.

Balances, members' running totals and usage metric totals are BIGINT columns. Adding past
their range is an error on PostgreSQL ("bigint out of range") and, on SQLite, silently turns
the value into a float. So every increment carries a condition that the result stays within
±MAX_TOTAL, written so that the database never computes an out-of-range value to check it,
and a change whose condition fails is refused with LimitExceeded, changing nothing.

A sum of many such values can still pass 2^63: PostgreSQL's SUM(bigint) is an exact numeric,
but SQLite's SUM() raises "integer overflow". `exact_sum` splits each value into its high and
low 32 bits, whose sums fit in 64 bits for up to 2^31 rows on both engines, and `combine`
joins them again in Python, exactly.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func, literal_column

from creditpool.domain.errors import LimitExceeded

MAX_TOTAL = 2**63 - 1
_LOW_BITS = 32
_LOW_MASK = 2**_LOW_BITS - 1


def check_increment(delta: int) -> None:
    """Raise LimitExceeded for a change no total could take (it could not even be bound)."""
    if abs(delta) > MAX_TOTAL:
        raise LimitExceeded("the change is larger than any balance or total can hold")


def within_limit(column: Any, delta: int) -> ColumnElement[bool]:
    """Return the condition that `column + delta` stays within ±MAX_TOTAL."""
    check_increment(delta)
    if delta >= 0:
        return column <= MAX_TOTAL - delta  # type: ignore[no-any-return]
    return column >= -MAX_TOTAL - delta  # type: ignore[no-any-return]


def limit_exceeded(what: str) -> LimitExceeded:
    """Return the error for a change refused because `what` would pass its limit."""
    return LimitExceeded(f"{what} would pass its limit of {MAX_TOTAL:,} micro-credits or units")


def exact_sum(value: Any) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    """Return two aggregates (0 over no rows) whose `combine` is the exact sum of `value`."""
    # Constants written into the SQL: PostgreSQL has `bigint >> integer`, not `>> bigint`.
    high = func.coalesce(func.sum(value.bitwise_rshift(literal_column(str(_LOW_BITS)))), 0)
    low = func.coalesce(func.sum(value.bitwise_and(literal_column(str(_LOW_MASK)))), 0)
    return high, low


def combine(high: Any, low: Any) -> int:
    """Return the exact sum whose parts `exact_sum` selected."""
    return (int(high) << _LOW_BITS) + int(low)
