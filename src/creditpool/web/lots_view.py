"""What the class manager shows of an org's lots: where its credits came from, in the order
they are spent, and a notice when some of them expire within the week."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from creditpool.domain.roles import Permission
from creditpool.services import auth
from creditpool.services.auth import Grant
from creditpool.services.credits_by_lot import credits_by_lot
from creditpool.services.lot_views import ExpiringView, LotView
from creditpool.services.views import BalanceView
from creditpool.storage.unit_of_work import UnitOfWork

LOTS_SHOWN = 50  # the first lots in spending order; the API lists them all
SOON = timedelta(days=7)  # how far ahead the page warns of credits expiring


@dataclass(frozen=True)
class LotsPanel:
    """The "Credits by lot" part of the class manager and its "expires soon" notice."""

    lots: list[LotView]  # in spending order
    more: bool  # the org has more lots than shown
    expiring_soon: list[ExpiringView]  # within SOON, soonest first

    @property
    def expiring_total(self) -> int:
        """The credits that expire within SOON, pool and wallets together."""
        return sum(lapsing.amount for lapsing in self.expiring_soon)


def lots_panel(
    uow: UnitOfWork, org_id: str, grant: Grant, balance: BalanceView
) -> LotsPanel | None:
    """Read the org's lots for a caller who may read them (the owner, managers, operators, and
    the people of a parent org acting as managers), else None; `balance` is the org's, as the
    page read it, with its next expiries."""
    if not auth.grants(grant, Permission.MANAGE):
        return None
    lots = credits_by_lot(uow, org_id, balance, limit=LOTS_SHOWN + 1)
    soon = [lapsing for lapsing in balance.expiring if lapsing.at <= balance.at + SOON]
    return LotsPanel(lots=lots[:LOTS_SHOWN], more=len(lots) > LOTS_SHOWN, expiring_soon=soon)
