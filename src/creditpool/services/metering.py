"""Seat metering: the pool's burn, posted lazily, and the balance at any future instant.

The org row holds the seat counts, the seat rates and `metered_since`; the burn rate is derived
from them (zero while the org or an ancestor of it is paused). Nothing runs daily. `settle`
posts the accrual since `metered_since` as one metering transfer (pool -> metered) and moves
`metered_since` to now; every service calls it, with the org row locked, before it changes the
pool's balance or the rate.
Reading the balance at T computes the same accrual without writing. See domain/metering.py for
the arithmetic.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import select

from creditpool.domain import metering
from creditpool.domain.metering import SeatCounts, SeatRates
from creditpool.domain.model import AccountKind, Seat, TransferKind
from creditpool.services import ledger
from creditpool.storage.schema import Account, Org
from creditpool.storage.unit_of_work import UnitOfWork

_A_MICROSECOND = timedelta(microseconds=1)


class MeteredOrg(Protocol):
    """What the burn is computed from: an org row, or a row of a query that read these."""

    paused: bool
    ancestor_paused: bool  # some ancestor of the org is paused: it burns nothing either
    rate_licensed: int
    rate_unlicensed: int
    rate_external: int
    licensed_seats: int
    unlicensed_seats: int
    external_seats: int
    metered_since: datetime


def seat_rates(org: MeteredOrg) -> SeatRates:
    """Return the org's yearly rate per kind of seat."""
    return SeatRates(org.rate_licensed, org.rate_unlicensed, org.rate_external)


def seat_counts(org: MeteredOrg) -> SeatCounts:
    """Return the org's active seats by kind."""
    return SeatCounts(org.licensed_seats, org.unlicensed_seats, org.external_seats)


def burn_rate(org: MeteredOrg) -> int:
    """Return the org's burn in micro-credits a year, zero while it or an ancestor is paused."""
    return metering.burn_rate(seat_rates(org), seat_counts(org), paused=not_burning(org))


def not_burning(org: MeteredOrg) -> bool:
    """Whether the org's seats burn nothing now: it is paused, or an ancestor of it is."""
    return org.paused or org.ancestor_paused


def pool_balance(uow: UnitOfWork, org_id: str) -> int:
    """Return the pool's posted balance."""
    return uow.session.scalars(
        select(Account.balance).where(Account.org_id == org_id, Account.id == AccountKind.POOL)
    ).one()


def pool_available(uow: UnitOfWork, org: Org, at: datetime) -> int:
    """Return what the pool can give at `at`: its posted balance less the unposted burn."""
    return available(org, pool_balance(uow, org.id), at)


def available(org: MeteredOrg, posted: int, at: datetime) -> int:
    """Return what a pool whose posted balance is `posted` can give at `at`."""
    accrued = metering.accrual(rate=burn_rate(org), start=org.metered_since, end=at, balance=posted)
    return posted - accrued


def settle(
    uow: UnitOfWork,
    org: Org,
    *,
    actor: str,
    posting: ledger.Posting | None = None,
    at: datetime | None = None,
) -> int:
    """Post the burn since `metered_since` and move it to now (or to `at`, an earlier instant:
    a lot's expiry, services/expiry.py); the org row must be locked."""
    end = uow.now if at is None else at
    if org.metered_since >= end:
        return 0
    rate, posted = burn_rate(org), pool_balance(uow, org.id)
    accrued = metering.accrual(rate=rate, start=org.metered_since, end=end, balance=posted)
    if accrued > 0:
        own = posting or ledger.Posting(uow.session, org.id, actor, uow.now)
        # The accrual never exceeds the posted balance, so this debit cannot fail.
        if not own.withdraw(AccountKind.POOL, accrued):  # pragma: no cover - guarded above
            raise AssertionError("metering accrual exceeded the pool")
        own.adjust(AccountKind.METERED, accrued)
        # When the burn began (this many seconds ago) and for how long it burnt (until the pool
        # ran dry, if it did): a chart of the pool can then draw it where it happened.
        since = org.metered_since
        ago = int((uow.now - since).total_seconds())
        ran = int((burnt_until(rate, since, posted, end) - since).total_seconds())
        own.record(
            TransferKind.METERING,
            AccountKind.POOL,
            AccountKind.METERED,
            accrued,
            metrics={"began_seconds_ago": ago, "burnt_seconds": ran},
            # Burnt before `end`: a lot that expires at `end` was there to burn until then.
            as_of=end - _A_MICROSECOND,
        )
        own.flush()
    org.metered_since = end
    return accrued


def moves_rate(
    org: Org, seats: Iterable[tuple[Seat, int]] = (), rates: SeatRates | None = None
) -> bool:
    """Tell whether changing seat counts by `seats` (and the rates to `rates`) moves the burn.

    Writes that move neither the rate nor the pool's balance leave the burn unposted: settling
    them anyway would split the accrual at arbitrary instants and let rounding drift the pool.
    """
    counts = {Seat.LICENSED: org.licensed_seats, Seat.UNLICENSED: org.unlicensed_seats}
    counts[Seat.EXTERNAL] = org.external_seats
    for seat, delta in seats:
        counts[seat] += delta
    after = metering.burn_rate(
        rates or seat_rates(org),
        SeatCounts(counts[Seat.LICENSED], counts[Seat.UNLICENSED], counts[Seat.EXTERNAL]),
        paused=not_burning(org),
    )
    return after != burn_rate(org)


def burnt_until(rate: int, since: datetime, posted: int, now: datetime) -> datetime:
    """Return when the burn since `since` stopped: now, or the instant the pool ran dry."""
    dry = metering.depletion_instant(rate=rate, since=since, balance=posted)
    return now if dry is None or dry > now else dry


def change_seats(org: Org, seat: Seat, delta: int) -> None:
    """Count `delta` more (or fewer) active seats of a kind; call `settle` first."""
    if seat is Seat.LICENSED:
        org.licensed_seats += delta
    elif seat is Seat.UNLICENSED:
        org.unlicensed_seats += delta
    else:
        org.external_seats += delta
