"""Making a wallet able to pay: releasing expired holds and automatic top-ups.

Usage and holds take the fast path first: one conditional debit of the wallet, no lock on the
org. Only when it fails do they take the slow path here, in lock order: the org row (when
automatic allocation may move pool credits), the member's expired holds, then the wallet.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select

from creditpool.domain.amounts import format_credits
from creditpool.domain.errors import InsufficientCredits, MemberRemoved, NotFound, OrgPaused
from creditpool.domain.model import AccountKind, HoldStatus, MemberStatus, TransferKind
from creditpool.services import expiry, ledger, lots, metering
from creditpool.services.ledger import bulk_update, chunks, wallet_account
from creditpool.services.lookups import load_member, load_org, settlement_due
from creditpool.services.views import settings_of
from creditpool.storage.bulk import among
from creditpool.storage.schema import Account, Hold, Member, Org
from creditpool.storage.unit_of_work import UnitOfWork


def load_chargeable(uow: UnitOfWork, org_id: str, member_id: str) -> tuple[Org, Member]:
    """Return the org and member that usage or a hold is for, in one query; refuse a paused
    org or a removed member."""
    row = uow.session.execute(
        select(Org, Member)
        .outerjoin(Member, (Member.org_id == Org.id) & (Member.id == member_id))
        .where(Org.id == org_id)
        .execution_options(populate_existing=True)
    ).one_or_none()
    if row is None:
        raise NotFound(f"no org {org_id}")
    org, member = row
    if settlement_due(org, uow.now) and member is not None:
        # A period boundary or an expiry has passed: settled under the org's lock before
        # anything moves.
        org = load_org(uow, org_id, lock=True)
        uow.session.refresh(member)
    if org.paused:
        raise OrgPaused("the org is paused: usage and holds are refused until it resumes")
    if member is None:
        raise NotFound(f"no member {member_id} in this org")
    if member.status == MemberStatus.REMOVED:
        raise MemberRemoved("this member was removed from the org")
    return org, member


@dataclass(frozen=True)
class ExpiredHolds:
    """Pending holds past their expiry, locked, and what each member gets back."""

    hold_ids: list[str]
    freed: dict[str, int]
    # The lots each member's wallet gets back, from the holds' shares.
    shares: dict[str, list[lots.Share]] = field(default_factory=dict)


def release_expired_holds(
    uow: UnitOfWork, org_id: str, member_ids: Sequence[str] | None = None
) -> int:
    """Mark pending holds past their expiry as expired and free their credits; return how many."""
    expired = lock_expired_holds(uow, org_id, member_ids)
    release_locked_holds(uow, org_id, expired)
    return len(expired.hold_ids)


def lock_expired_holds(
    uow: UnitOfWork, org_id: str, member_ids: Sequence[str] | None = None
) -> ExpiredHolds:
    """Lock the pending holds past their expiry (of these members, or all), in id order."""
    query = (
        select(Hold.id, Hold.member_id, Hold.amount, Hold.lots)
        .where(
            Hold.org_id == org_id,
            Hold.status == HoldStatus.PENDING,
            Hold.expires_at <= uow.now,
        )
        .order_by(Hold.id)
        .with_for_update(key_share=True)
    )
    freed: dict[str, int] = defaultdict(int)
    shares: dict[str, list[lots.Share]] = defaultdict(list)
    hold_ids: list[str] = []
    parts = [None] if member_ids is None else list(chunks(list(member_ids)))
    for part in parts:
        scoped = query if part is None else query.where(among(uow.session, Hold.member_id, part))
        for hold_id, member_id, amount, held_lots in uow.session.execute(scoped).tuples():
            hold_ids.append(hold_id)
            freed[member_id] += amount
            shares[member_id] += lots.shares_of(held_lots)
    return ExpiredHolds(hold_ids, dict(freed), dict(shares))


def release_locked_holds(uow: UnitOfWork, org_id: str, expired: ExpiredHolds) -> dict[str, int]:
    """Mark locked holds expired and give their credits back to the wallets, in member order;
    return, by member, what of them lapsed at once instead (their lot has expired meanwhile:
    services/expiry.py), which the wallet no longer holds."""
    for part in chunks(expired.hold_ids):
        uow.session.execute(
            bulk_update(Hold)
            .where(Hold.org_id == org_id, among(uow.session, Hold.id, part))
            .values(status=HoldStatus.EXPIRED, closed_at=uow.now)
        )
    # Releasing records no transfer, so the posting's actor is never written.
    posting = ledger.Posting(uow.session, org_id, "", uow.now)
    lapsed: dict[str, int] = {}
    for member_id in sorted(expired.freed):
        wallet = wallet_account(member_id)
        posting.release(wallet, expired.freed[member_id])
        lots.release(uow.session, org_id, wallet, expired.shares.get(member_id, []))
        gone = expiry.expire_released(uow, org_id, wallet, expired.shares.get(member_id, []))
        if gone:
            lapsed[member_id] = gone
    return lapsed


def make_spendable(
    uow: UnitOfWork, org: Org, member: Member, amount: int, posting: ledger.Posting
) -> int:
    """Ensure the wallet can spend `amount`, topping it up under automatic allocation.

    Returns the credits allotted automatically (0 when none were needed). Raises
    InsufficientCredits, with nothing moved, when the wallet still cannot pay.
    """
    if org.auto_enabled:
        # Automatic allocation moves pool credits: take the pool's lock, then re-read the org.
        org = load_org(uow, org.id, lock=True)
        if org.paused:
            raise OrgPaused("the org is paused")
    release_expired_holds(uow, org.id, [member.id])
    balance, held = uow.session.execute(
        select(Account.balance, Account.held)
        .where(Account.org_id == org.id, Account.id == wallet_account(member.id))
        .with_for_update(key_share=True)
    ).one()
    available = balance - held
    # Only under the org lock can auto_allocated_total change: read it fresh.
    member = load_member(uow, org.id, member.id)
    uow.session.refresh(member)
    # With a period, the cap is a budget per period: it counts what came since it began.
    periodic = org.auto_period is not None
    received = member.auto_period_allocated if periodic else member.auto_allocated_total
    top_up = settings_of(org).auto_allocation.top_up(
        available=available, amount=amount, auto_allocated=received
    )
    if top_up == 0:
        return 0
    metering.settle(uow, org, actor=posting.actor, posting=posting)
    if not posting.withdraw(AccountKind.POOL, top_up):
        raise InsufficientCredits(
            f"the pool has {format_credits(metering.pool_balance(uow, org.id))} available, "
            f"a top-up of {format_credits(top_up)} needed"
        )
    wallet = wallet_account(member.id)
    posting.adjust(wallet, top_up)
    posting.record(
        TransferKind.AUTO_ALLOCATION, AccountKind.POOL, wallet, top_up, member_id=member.id
    )
    ledger.add_to_member_totals(
        uow.session,
        org.id,
        [member],
        allocated=top_up,
        auto_allocated=top_up,
        auto_period=top_up if periodic else 0,
    )
    return top_up


def lock_wallets(uow: UnitOfWork, org_id: str, member_ids: Sequence[str]) -> dict[str, int]:
    """Lock the members' wallets in id order; return what each can spend."""
    spendable: dict[str, int] = {}
    for part in chunks(sorted(member_ids)):
        rows = uow.session.execute(
            select(Account.member_id, Account.balance - Account.held)
            .where(
                Account.org_id == org_id,
                among(uow.session, Account.id, [wallet_account(m) for m in part]),
            )
            .order_by(Account.id)
            .with_for_update(key_share=True)
        ).tuples()
        spendable.update((member_id or "", int(value)) for member_id, value in rows)
    return spendable
