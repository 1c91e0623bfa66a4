"""A pool's future with lots that expire: what it can give at an instant, and when it runs out.

The seat burn takes from a pool's lots in the spending order; at a lot's expiry what is left of
it lapses. Between expiries the burn is the continuous accrual of domain/metering.py, and it is
settled at each expiry instant (services/expiry.py posts it so), so the arithmetic here splits
it at the same instants and rounds the same way: the projection equals what posting will do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from creditpool.domain.metering import accrual, depletion_instant


@dataclass(frozen=True)
class PoolLot:
    """What one lot holds in the pool (posted), and when it lapses (None: never)."""

    amount: int
    expires_at: datetime | None


@dataclass(frozen=True)
class Projection:
    """The pool at an instant: what it can give, and when it runs out (None: never)."""

    available: int
    depletes_at: datetime | None


def project(*, rate: int, since: datetime, lots: Sequence[PoolLot], at: datetime) -> Projection:
    """Return what a pool holding `lots` (in spending order, posted at `since`) can give at
    `at` with the burn at `rate`, and the instant its available reaches zero: by the burn, or
    by an expiry that leaves nothing.
    """
    left = [lot.amount for lot in lots]
    instants = sorted({lot.expires_at for lot in lots if lot.expires_at is not None})
    start = since
    available: int | None = None
    for end in [*instants, None]:
        total = sum(left)
        dry = depletion_instant(rate=rate, since=start, balance=total) if total else start
        if available is None and (end is None or at < end):
            available = total - accrual(rate=rate, start=start, end=at, balance=total)
        if end is None or (dry is not None and dry <= end):
            if available is None:  # `at` comes after the pool ran dry in this segment
                available = 0
            return Projection(available, dry if total or rate else None)
        _burn(left, accrual(rate=rate, start=start, end=end, balance=total))
        for number, lot in enumerate(lots):
            if lot.expires_at == end:
                left[number] = 0
        start = end
        if not any(left):
            return Projection(available if available is not None else 0, end)
    raise AssertionError("unreachable")  # pragma: no cover


def _burn(left: list[int], amount: int) -> None:
    """Take `amount` from the lots in order."""
    for number, held in enumerate(left):
        if amount == 0:
            return
        part = min(held, amount)
        left[number] -= part
        amount -= part
