"""Reading an org's lots: what each still holds and where, and what expires when.

Figures are exact at the instant read, as the pool's balance is: the burn accrued since it was
last posted is taken from the pool's lots in the spending order, as posting it would. Expiries
passed are posted before any request reads (services/auth.py settles them), so a lot whose
`expires_at` has passed holds nothing here but what pending holds keep.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from creditpool.domain import metering as arithmetic
from creditpool.domain.model import AccountKind
from creditpool.services import metering
from creditpool.services.ledger import wallet_account
from creditpool.services.lots import Holding
from creditpool.storage.schema import Lot, LotBalance, Org
from creditpool.storage.unit_of_work import UnitOfWork

# How many expiry instants a balance lists.
EXPIRING_LISTED = 5


@dataclass(frozen=True)
class LotView:
    """One lot of an org: its terms and where its credits are now."""

    id: str
    source: str
    parent_lot_id: str | None
    amount: int
    in_pool: int
    in_wallets: int
    held: int  # of `in_wallets`, what pending holds keep
    used: int
    metered: int
    moved: int  # to the org's children (less what came back), or back to its parent
    expired: int
    priority: int
    expires_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class ExpiringView:
    """Credits that lapse together at one instant."""

    at: datetime
    amount: int


def list_lots(uow: UnitOfWork, org: Org, at: datetime) -> list[LotView]:
    """Return the org's lots in the order they are spent, with their figures at `at`."""
    lots = list(uow.session.scalars(select(Lot).where(Lot.org_id == org.id)))
    pool: dict[str, int] = defaultdict(int)
    wallets: dict[str, int] = defaultdict(int)
    held: dict[str, int] = defaultdict(int)
    rows = uow.session.execute(
        select(
            LotBalance.lot_id,
            LotBalance.account_id == AccountKind.POOL,
            func.sum(LotBalance.amount),
            func.sum(LotBalance.held),
        )
        .where(LotBalance.org_id == org.id)
        .group_by(LotBalance.lot_id, LotBalance.account_id == AccountKind.POOL)
    ).tuples()
    for lot_id, in_pool, amount, reserved in rows:
        (pool if in_pool else wallets)[lot_id] += int(amount)
        held[lot_id] += int(reserved)
    burnt = _unposted_burn(org, lots, pool, at)
    views = [
        LotView(
            id=lot.id,
            source=lot.source,
            parent_lot_id=lot.parent_lot_id,
            amount=lot.amount,
            in_pool=pool[lot.id] - burnt[lot.id],
            in_wallets=wallets[lot.id],
            held=held[lot.id],
            used=lot.amount
            - pool[lot.id]
            - wallets[lot.id]
            - lot.metered
            - lot.moved
            - lot.expired,
            metered=lot.metered + burnt[lot.id],
            moved=lot.moved,
            expired=lot.expired,
            priority=lot.priority,
            expires_at=lot.expires_at,
            created_at=lot.created_at,
        )
        for lot in lots
    ]
    return sorted(views, key=_order)


def _order(view: LotView) -> tuple[int, datetime, datetime, str]:
    return Holding(view.id, 0, 0, view.priority, view.expires_at, view.created_at).order()


def _unposted_burn(
    org: Org, lots: Sequence[Lot], pool: dict[str, int], at: datetime
) -> dict[str, int]:
    """The burn accrued since it was last posted, by lot, as posting it would take it."""
    posted = sum(pool.values())
    rate = metering.burn_rate(org)
    accrued = arithmetic.accrual(rate=rate, start=org.metered_since, end=at, balance=posted)
    burnt: dict[str, int] = defaultdict(int)
    holdings = [
        Holding(lot.id, pool[lot.id], 0, lot.priority, lot.expires_at, lot.created_at)
        for lot in lots
        if pool[lot.id] > 0
    ]
    for holding in sorted(holdings, key=Holding.order):
        if accrued == 0:
            break
        part = min(accrued, holding.amount)
        burnt[holding.lot_id] += part
        accrued -= part
    return burnt


def expiring(uow: UnitOfWork, org: Org, at: datetime) -> list[ExpiringView]:
    """Return the next expiry instants after `at` (at most EXPIRING_LISTED), each with what
    the pool and the wallets hold of the lots that lapse then. No query for an org none of
    whose lots expires."""
    if org.next_expiry_at is None:
        return []
    return _expiring_in(uow, org.id, None, at)


def member_expiring(uow: UnitOfWork, org: Org, member_id: str, at: datetime) -> list[ExpiringView]:
    """Return what the member's wallet holds of lots that expire, by instant, soonest first."""
    if org.next_expiry_at is None:
        return []
    return _expiring_in(uow, org.id, wallet_account(member_id), at)


def _expiring_in(
    uow: UnitOfWork, org_id: str, account_id: str | None, at: datetime
) -> list[ExpiringView]:
    query = (
        select(Lot.expires_at, func.sum(LotBalance.amount))
        .join(LotBalance, (LotBalance.org_id == Lot.org_id) & (LotBalance.lot_id == Lot.id))
        .where(Lot.org_id == org_id, Lot.expires_at > at, LotBalance.amount > 0)
        .group_by(Lot.expires_at)
        .order_by(Lot.expires_at)
        .limit(EXPIRING_LISTED)
    )
    if account_id is not None:
        query = query.where(LotBalance.account_id == account_id)
    return [
        ExpiringView(instant, int(amount))
        for instant, amount in uow.session.execute(query).tuples()
        if instant is not None
    ]
