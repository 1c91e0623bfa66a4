"""Reading an org's lots in tests, and checking them against its ledger.

`creditpool audit` checks the accounts and their transfers; lots add a second set of books
beside them, which `lot_breaches` checks the same way: what the lots hold in each pool and
wallet is the account's balance (and held), every transfer's lots add up to its amount, and
each lot's counters are what the transfers naming it moved.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import func, select

from creditpool.domain.model import AccountKind, TransferKind
from creditpool.services import lot_views
from creditpool.services.lookups import load_org
from creditpool.services.lot_views import LotView
from creditpool.storage.schema import Account, Lot, LotBalance, Transfer
from creditpool.storage.unit_of_work import UnitOfWork

# How each kind of transfer counts in the lots it names: the counter it moves, and which way.
_COUNTED = {
    TransferKind.USAGE: ("used", 1),
    TransferKind.METERING: ("metered", 1),
    TransferKind.EXPIRY: ("expired", 1),
    TransferKind.TO_CHILD: ("moved", 1),
    TransferKind.FROM_CHILD: ("moved", -1),
    TransferKind.TO_PARENT: ("moved", 1),
}


def lots_of(uow: UnitOfWork, org_id: str) -> list[LotView]:
    """The org's lots now, in the order they are spent (services/lot_views.list_lots)."""
    with uow:
        org = load_org(uow, org_id)
        return lot_views.list_lots(uow, org, uow.now)


def lot_breaches(uow: UnitOfWork, org_id: str) -> list[str]:
    """Every way the org's lots disagree with its ledger (empty when they agree)."""
    breaches: list[str] = []
    with uow:
        session = uow.session
        holdings = {
            account: (int(amount), int(held))
            for account, amount, held in session.execute(
                select(
                    LotBalance.account_id, func.sum(LotBalance.amount), func.sum(LotBalance.held)
                )
                .where(LotBalance.org_id == org_id)
                .group_by(LotBalance.account_id)
            ).tuples()
        }
        for account in session.scalars(
            select(Account).where(
                Account.org_id == org_id,
                Account.kind.in_([AccountKind.POOL, AccountKind.WALLET]),
            )
        ):
            if holdings.get(account.id, (0, 0)) != (account.balance, account.held):
                breaches.append(
                    f"{account.id}: lots hold {holdings.get(account.id, (0, 0))}, "
                    f"the account {(account.balance, account.held)}"
                )
        counted: dict[tuple[str, str], int] = defaultdict(int)
        for transfer in session.scalars(select(Transfer).where(Transfer.org_id == org_id)):
            shares = transfer.lots or []
            if sum(int(share["amount"]) for share in shares) != transfer.amount:
                breaches.append(f"transfer {transfer.id}: its lots do not add up to its amount")
            counter = _COUNTED.get(TransferKind(transfer.kind))
            for share in shares:
                if counter is not None:
                    counted[(share["lot_id"], counter[0])] += counter[1] * int(share["amount"])
        in_accounts: dict[str, int] = defaultdict(int)
        for lot_id, amount in session.execute(
            select(LotBalance.lot_id, LotBalance.amount).where(LotBalance.org_id == org_id)
        ).tuples():
            in_accounts[lot_id] += amount
        for lot in session.scalars(select(Lot).where(Lot.org_id == org_id)):
            # Posted figures only: what lot_views adds of the burn not yet posted is left out.
            figures = {
                "used": lot.amount - in_accounts[lot.id] - lot.metered - lot.moved - lot.expired,
                "metered": lot.metered,
                "expired": lot.expired,
                "moved": lot.moved,
            }
            for name, figure in figures.items():
                if figure != counted[(lot.id, name)]:
                    breaches.append(
                        f"lot {lot.id}: {name} {figure}, its transfers {counted[(lot.id, name)]}"
                    )
    return breaches
