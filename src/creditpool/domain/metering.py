"""Seat metering in integer arithmetic.

A pool burns at a rate in micro-credits per year: the sum of its active seats' rates, zero while
the org is paused. No job writes a row per seat per day. The pool keeps its posted balance and
the instant since which the current rate applies; the burn so far is

    accrued(t) = min(balance, rate * (t - since) / year)        rounded down, in micro-credits

with time counted in microseconds and a year of 365 days. Before anything changes the rate or
the pool's balance, the accrual is posted as one metering transfer and `since` moves on. A pool
that runs dry stops at zero, and the time it spends dry is never charged later, because the cap
applies to each posted interval. Reading costs the same for 10 seats as for 1,000,000.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from creditpool.domain.model import Seat

SECONDS_PER_YEAR = 31_536_000
MICROSECONDS_PER_YEAR = SECONDS_PER_YEAR * 1_000_000
_ONE_MICROSECOND = timedelta(microseconds=1)
LAST_INSTANT = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


@dataclass(frozen=True)
class SeatRates:
    """Credits a year, in micro-credits, that one active seat of each kind burns."""

    licensed: int = 0
    unlicensed: int = 0
    external: int = 0

    def of(self, seat: Seat) -> int:
        """Return the yearly rate of one seat of this kind."""
        return {
            Seat.LICENSED: self.licensed,
            Seat.UNLICENSED: self.unlicensed,
            Seat.EXTERNAL: self.external,
        }[seat]


# The usual seat metering (the README's school): 1 credit a year per licensed seat, 0.1 per
# unlicensed seat, nothing for external ones.
USUAL_SEAT_RATES = SeatRates(licensed=1_000_000, unlicensed=100_000, external=0)


@dataclass(frozen=True)
class SeatCounts:
    """How many active members hold each kind of seat."""

    licensed: int = 0
    unlicensed: int = 0
    external: int = 0


def burn_rate(rates: SeatRates, seats: SeatCounts, *, paused: bool) -> int:
    """Return the pool's burn in micro-credits a year: zero while paused."""
    if paused:
        return 0
    return (
        seats.licensed * rates.licensed
        + seats.unlicensed * rates.unlicensed
        + seats.external * rates.external
    )


def elapsed_microseconds(start: datetime, end: datetime) -> int:
    """Return whole microseconds from start to end, never negative."""
    return max(0, (end - start) // _ONE_MICROSECOND)


def accrual(*, rate: int, start: datetime, end: datetime, balance: int) -> int:
    """Return the micro-credits burnt from start to end at `rate`, capped by `balance`."""
    if rate <= 0 or balance <= 0:
        return 0
    return min(balance, rate * elapsed_microseconds(start, end) // MICROSECONDS_PER_YEAR)


def depletion_instant(*, rate: int, since: datetime, balance: int) -> datetime | None:
    """Return the instant, rounded up to the second, at which `balance` is burnt; None at rate 0."""
    if rate <= 0:
        return None
    # floor(rate * us / Y) >= balance  <=>  us >= balance * Y / rate: the least such us.
    microseconds = -(-max(balance, 0) * MICROSECONDS_PER_YEAR // rate)
    if microseconds > (LAST_INSTANT - since) // _ONE_MICROSECOND:
        # Beyond the calendar (0.1 credit a year against 1,000 credits): say the last second.
        return LAST_INSTANT
    return ceil_to_second(since + timedelta(microseconds=microseconds))


def ceil_to_second(instant: datetime) -> datetime:
    """Return the instant rounded up to a whole second."""
    if instant.microsecond == 0:
        return instant
    return instant.replace(microsecond=0) + timedelta(seconds=1)


def daily_rate(rate: int) -> int:
    """Return a yearly rate divided by 365, rounded half up to a whole micro-credit."""
    return (2 * rate + 365) // 730


def seat_access(
    *, removed: bool, seat: Seat, paused: bool, meters_licensed: bool, pool_available: int
) -> tuple[bool, str]:
    """Return whether the org's pool pays for a member's seat now, and the first reason why not."""
    if removed:
        return False, "removed"
    if seat is Seat.EXTERNAL:
        return False, "external"
    if seat is Seat.UNLICENSED:
        return False, "unlicensed"
    if paused:
        return False, "paused"
    if meters_licensed and pool_available <= 0:
        return False, "no_credits"
    return True, "ok"
