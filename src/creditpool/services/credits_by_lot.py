"""The class manager's "Credits by lot" table: an org's lots in the order they are spent.

Cost. Most orgs have one lot, and every credit in the pool and the wallets is then of that lot:
its figures are the org's balance, which the page has already read, so the table costs one
small statement, the org's lots. Summing each lot's holdings over every wallet
(services/lot_views.py) reads a row per member (a few milliseconds at 10,000 members, tens at
100,000), and is left to the orgs that have several lots; so is the part of the wallets that
pending holds keep, which only that sum gives (the one lot shows none).
"""

from __future__ import annotations

from sqlalchemy import select

from creditpool.services import lot_views
from creditpool.services.lot_views import LotView
from creditpool.services.views import BalanceView
from creditpool.storage.schema import Lot
from creditpool.storage.unit_of_work import UnitOfWork


def credits_by_lot(
    uow: UnitOfWork, org_id: str, balance: BalanceView, *, limit: int
) -> list[LotView]:
    """Return the first `limit` of the org's lots in spending order, with their figures; an
    org of one lot has them from `balance`, the org's balance as just read."""
    with uow:
        lots = list(uow.session.scalars(select(Lot).where(Lot.org_id == org_id).limit(2)))
        if len(lots) < 2:
            return [_only_lot(lot, balance) for lot in lots]
    return lot_views.lots_of(uow, org_id, limit=limit)


def _only_lot(lot: Lot, balance: BalanceView) -> LotView:
    """The org's one lot: it holds the whole pool and every wallet, and all seat burn so far
    (the unposted part included, as `balance` has it) came from it."""
    return LotView(
        id=lot.id,
        source=lot.source,
        parent_lot_id=lot.parent_lot_id,
        amount=lot.amount,
        in_pool=balance.available,
        in_wallets=balance.allocated,
        held=0,  # not read: see above
        used=lot.amount
        - balance.available
        - balance.allocated
        - balance.metered
        - lot.moved
        - lot.expired,
        metered=balance.metered,
        moved=lot.moved,
        expired=lot.expired,
        priority=lot.priority,
        expires_at=lot.expires_at,
        created_at=lot.created_at,
    )
