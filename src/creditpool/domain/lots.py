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
    """The pool at an instant: what it can give, what the burn and the expiries took from it
    since it was posted, and when it runs out (None: never)."""

    available: int
    burnt: int
    lapsed: int
    depletes_at: datetime | None
    # What lapses in the pool at each expiry instant, the burn until then taken first (an
    # instant after the pool runs out lapses nothing, and is left out).
    lapses: tuple[tuple[datetime, int], ...] = ()


def project(*, rate: int, since: datetime, lots: Sequence[PoolLot], at: datetime) -> Projection:
    """Return the pool at `at` of one holding `lots` (in spending order, posted at `since`)
    with the burn at `rate`, and the instant its available reaches zero: by the burn, or by
    an expiry that leaves nothing.
    """
    left = [lot.amount for lot in lots]
    instants = sorted({lot.expires_at for lot in lots if lot.expires_at is not None})
    start, burnt, lapsed = since, 0, 0
    lapses: list[tuple[datetime, int]] = []
    seen: tuple[int, int, int] | None = None  # available, burnt, lapsed at `at`
    depletes_at: datetime | None = None
    for end in [*instants, None]:
        total = sum(left)
        if seen is None and (end is None or at < end):
            upto = accrual(rate=rate, start=start, end=at, balance=total)
            seen = (total - upto, burnt + upto, lapsed)
        if total == 0:
            depletes_at = start if rate else None
            break
        dry = depletion_instant(rate=rate, since=start, balance=total)
        if end is None or (dry is not None and dry <= end):
            depletes_at = dry
            break
        spent = accrual(rate=rate, start=start, end=end, balance=total)
        _burn(left, spent)
        burnt += spent
        lapsing = sum(left[n] for n, lot in enumerate(lots) if lot.expires_at == end)
        for number, lot in enumerate(lots):
            if lot.expires_at == end:
                left[number] = 0
        lapses.append((end, lapsing))
        lapsed += lapsing
        start = end
        if not any(left):
            depletes_at = end
            break
    if seen is None:  # `at` comes after the pool ran out
        total = sum(left)
        upto = accrual(rate=rate, start=start, end=at, balance=total)
        seen = (total - upto, burnt + upto, lapsed)
    return Projection(*seen, depletes_at, tuple(lapses))


def _burn(left: list[int], amount: int) -> None:
    """Take `amount` from the lots in order."""
    for number, held in enumerate(left):
        if amount == 0:
            return
        part = min(held, amount)
        left[number] -= part
        amount -= part
