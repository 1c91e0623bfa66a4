"""Lots that expire: posted by the first write that finds an expiry passed, or by the worker.

At a lot's `expires_at`, what it still holds in the pool and in every wallet lapses, except
what pending holds keep (that lapses when the hold lets it go, `expire_released`). The org row
says when its next expiry is (`next_expiry_at`), so a charge or a write reads one column to
know whether anything is due, and `load_org(lock=True)` posts it before the write goes on.

Posting an instant passed is, in order: the seat burn up to that instant (the burn takes from
lots in the spending order, so before the expiry it may have spent the expiring lot), then one
`expiry` transfer per account to the org's `expired` account, naming the lots. Several
instants passed are posted one after the other. Everything runs under the org's lock and
re-reads what is due, so a second call posts nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from itertools import groupby

from sqlalchemy import func, select, update

from creditpool.domain.model import AccountKind, TransferKind
from creditpool.services import ledger, lot_events, lots, metering
from creditpool.services.ledger import WALLET_PREFIX
from creditpool.storage.schema import Account, Lot, LotBalance, Org
from creditpool.storage.unit_of_work import UnitOfWork

ACTOR = "system:expiry"


def post_due(uow: UnitOfWork, org: Org) -> int:
    """Post every expiry passed in the org, whose row the caller has locked; the credits
    that lapsed."""
    due = uow.session.execute(
        select(Lot.id, Lot.expires_at)
        .where(Lot.org_id == org.id, Lot.expired_at.is_(None), Lot.expires_at <= uow.now)
        .order_by(Lot.expires_at, Lot.id)
    ).all()
    lapsed = 0
    for instant, group in groupby(due, key=lambda row: row.expires_at):
        ids = [row.id for row in group]
        metering.settle(uow, org, actor=ACTOR, at=instant)
        lapsed += _expire(uow, org.id, ids)
        uow.session.execute(
            update(Lot).where(Lot.org_id == org.id, Lot.id.in_(ids)).values(expired_at=uow.now)
        )
    org.next_expiry_at = next_expiry(uow, org.id)
    if due:
        lots.refresh_sole(uow.session, org.id)
    return lapsed


def next_expiry(uow: UnitOfWork, org_id: str) -> datetime | None:
    """Return the soonest expiry of the org's lots not yet posted."""
    return uow.session.scalar(
        select(func.min(Lot.expires_at)).where(Lot.org_id == org_id, Lot.expired_at.is_(None))
    )


def _expire(uow: UnitOfWork, org_id: str, lot_ids: Sequence[str]) -> int:
    """Post what these lots hold unheld in the pool and the wallets as expired. The accounts
    are locked first (in id order, as every writer locks them), then their holdings read: a
    charge that began before the expiry instant may still be spending them."""
    holding = (
        LotBalance.org_id == org_id,
        LotBalance.lot_id.in_(lot_ids),
        LotBalance.amount > LotBalance.held,
    )
    accounts = sorted(set(uow.session.scalars(select(LotBalance.account_id).where(*holding))))
    for start in range(0, len(accounts), lots.CHUNK):
        uow.session.execute(
            select(Account.id)
            .where(Account.org_id == org_id, Account.id.in_(accounts[start : start + lots.CHUNK]))
            .order_by(Account.id)
            .with_for_update(key_share=True)
        ).all()
    held = uow.session.execute(
        select(LotBalance.account_id, LotBalance.lot_id, LotBalance.amount - LotBalance.held)
        .where(*holding)
        .order_by(LotBalance.account_id, LotBalance.lot_id)
    ).all()
    by_account: dict[str, list[lots.Share]] = defaultdict(list)
    for account_id, lot_id, amount in held:
        by_account[account_id].append((lot_id, amount))
    return post_expiry(uow, org_id, by_account)


def expire_released(
    uow: UnitOfWork, org_id: str, wallet_id: str, released: Sequence[lots.Share]
) -> int:
    """Post as expired what a hold just let go of lots that have already expired."""
    if not released:
        return 0
    lapsed_lots = set(
        uow.session.scalars(
            select(Lot.id).where(
                Lot.org_id == org_id,
                Lot.id.in_([lot_id for lot_id, _ in released]),
                Lot.expires_at <= uow.now,
            )
        )
    )
    shares = [(lot_id, part) for lot_id, part in released if lot_id in lapsed_lots]
    # The org's sole lot is left for the next expiry posted under the org's lock to name
    # again: writing the org's row here, after the wallet's, would turn the lock order round.
    return post_expiry(uow, org_id, {wallet_id: shares} if shares else {})


def expire_leftovers(uow: UnitOfWork, org_id: str, account_ids: Sequence[str]) -> int:
    """Post as expired what these wallets hold, now unheld, of lots already expired (their
    holds just closed with the members' removal). One query when the org has none."""
    lapsed = select(Lot.id).where(Lot.org_id == org_id, Lot.expires_at <= uow.now)
    if uow.session.execute(lapsed.limit(1)).first() is None:
        return 0
    by_account: dict[str, list[lots.Share]] = defaultdict(list)
    for start in range(0, len(account_ids), lots.CHUNK):
        part = list(account_ids[start : start + lots.CHUNK])
        rows = uow.session.execute(
            select(LotBalance.account_id, LotBalance.lot_id, LotBalance.amount)
            .where(
                LotBalance.org_id == org_id,
                LotBalance.account_id.in_(part),
                LotBalance.lot_id.in_(lapsed),
                LotBalance.amount > 0,
            )
            .order_by(LotBalance.account_id, LotBalance.lot_id)
        ).tuples()
        for account_id, lot_id, amount in rows:
            by_account[account_id].append((lot_id, amount))
    return post_expiry(uow, org_id, by_account)


def post_expiry(uow: UnitOfWork, org_id: str, by_account: dict[str, list[lots.Share]]) -> int:
    """Move these shares out of their accounts to `expired`, one transfer per account."""
    if not by_account:
        return 0
    posting = ledger.Posting(uow.session, org_id, ACTOR, uow.now)
    wallets: dict[str, int] = {}
    total = 0
    for account_id, shares in sorted(by_account.items()):
        amount = sum(part for _, part in shares)
        total += amount
        member_id = None
        if account_id.startswith(WALLET_PREFIX):
            member_id = account_id.removeprefix(WALLET_PREFIX)
            wallets[member_id] = amount
        elif not posting.withdraw(account_id, amount):  # pragma: no cover - its lots hold it
            raise AssertionError(f"{account_id} holds less than its lots")
        posting.record(
            TransferKind.EXPIRY,
            account_id,
            AccountKind.EXPIRED,
            amount,
            member_id=member_id,
            lots=shares,
        )
    if wallets:
        ledger.Posting.debit_wallets(uow.session.connection(), org_id, wallets)
    posting.adjust(AccountKind.EXPIRED, total)
    posting.flush()
    lot_events.announce_expired(uow, org_id, by_account)
    return total
