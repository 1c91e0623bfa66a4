"""Budgets per period: settling an org's period boundary, lazily or by the worker.

With a period (domain/periods.py), `max_per_member` caps a member's `auto_period_allocated`,
what it received automatically since `org.period_started_at`. When `org.period_ends_at` has
passed, the boundary is settled once, under the org's row lock, before anything else reads or
writes the org's credits:

1. With `auto_reclaim` and a returnable org, each active member gives back what is left of its
   automatic credits of the period: `min(spendable, max(0, auto_period_allocated - used))`,
   where `used = used_total - period_used_base` is the period's usage (usage spends a period's
   automatic credits first; manual allotments are never reclaimed). Each is a `reclaim`
   transfer wallet -> pool, all in one batch; like a revocation, it leaves the members'
   running totals of credits allotted as they are. Removed members are skipped: removal
   returned their credits already.
2. Every member's counters start afresh: `auto_period_allocated = 0` and `period_used_base =
   used_total`.
3. The org's bounds move to the period containing now: several boundaries crossed at once are
   settled once, as one (nothing was topped up in between).

Who settles, whichever comes first: any write that takes the org's lock
(services/lookups.load_org), a usage charge or hold (which read `period_ends_at` with the org
they load anyway), the authorization of every org-scoped request (a read settles in a short
transaction of its own before it reads), a user's list of memberships or orgs, and the worker.
Settling re-checks `period_ends_at` under the lock, so a second call does nothing. A member
brought back within a period counts afresh (services/members.join).

Lock order (services/ledger.py): the org row, then the members' expired holds, then their
wallets in id order, then member rows. Locking the wallets before reading the members' usage
makes a concurrent charge either finish first (its usage counted, its credits gone from the
wallet) or wait until the boundary is settled: a reclaim never takes credits a charge spent.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import inspect, or_, select

from creditpool.domain.errors import InvalidInput
from creditpool.domain.model import AccountKind, MemberStatus, Period, TransferKind
from creditpool.domain.periods import DEFAULT_TIMEZONE, period_bounds
from creditpool.services import alerts, expiry, ledger, lookups, metering
from creditpool.services.ledger import bulk_update, chunks, wallet_account
from creditpool.services.transactions import run_write
from creditpool.services.wallets import lock_expired_holds, lock_wallets, release_locked_holds
from creditpool.storage.bulk import among
from creditpool.storage.schema import Member, Org
from creditpool.storage.unit_of_work import UnitOfWork

logger = logging.getLogger("creditpool.periods")
# How the ledger names the one who reclaims: no person, the period's end.
ACTOR = "system:period"
# Orgs the worker settles per read of due boundaries.
SWEEP_BATCH = 100


@dataclass(frozen=True)
class Settled:
    """One boundary settled: the credits that went back to the pool, from how many members."""

    reclaimed: int = 0
    members: int = 0


def is_due(period_ends_at: datetime | None, now: datetime) -> bool:
    """Whether a period boundary (an org's `period_ends_at`, None without a period) has
    passed at `now`."""
    return period_ends_at is not None and period_ends_at <= now


def settle_locked(uow: UnitOfWork, org: Org, *, actor: str = ACTOR) -> Settled | None:
    """Settle the org's passed period boundary inside the open transaction, the org's row
    locked by the caller; None, and nothing changed, when none has passed."""
    if not is_due(org.period_ends_at, uow.now) or org.auto_period is None:
        return None
    settled = Settled()
    if org.auto_reclaim and org.returnable:
        settled = _reclaim(uow, org, actor)
    # The period's counters start afresh for every member, removed ones included (they come
    # back into the period that is running then).
    _restart_counters(uow, org.id)
    start, end = _bounds_now(uow, org)
    org.period_started_at, org.period_ends_at = start, end
    uow.session.flush()
    return settled


def _bounds_now(uow: UnitOfWork, org: Org) -> tuple[datetime, datetime]:
    """The bounds of the org's period containing now. A zone stored when it was valid may be
    missing from a later host's zone database: its periods then run in UTC (and the owner is
    told by the log) rather than every request to the org failing as it settles."""
    period = Period(org.auto_period or Period.WEEK)
    try:
        return period_bounds(period, org.timezone, uow.now)
    except InvalidInput:
        logger.warning(
            "org %s: time zone %r is unknown here; its periods run in UTC", org.id, org.timezone
        )
        return period_bounds(period, DEFAULT_TIMEZONE, uow.now)


def _reclaim(uow: UnitOfWork, org: Org, actor: str) -> Settled:
    """Post the period's unused automatic credits of every active member back to the pool."""
    # Only a member that received credits automatically this period may give any back; that
    # counter changes only under the org's lock, which the caller holds.
    candidates = list(
        uow.session.scalars(
            select(Member.id)
            .where(
                Member.org_id == org.id,
                Member.status == MemberStatus.ACTIVE,
                Member.auto_period_allocated > 0,
            )
            .order_by(Member.id)
        )
    )
    if not candidates:
        return Settled()
    expired = lock_expired_holds(uow, org.id, candidates)
    spendable = lock_wallets(uow, org.id, candidates)
    lapsed = release_locked_holds(uow, org.id, expired)
    for member_id, freed in expired.freed.items():
        spendable[member_id] = spendable.get(member_id, 0) + freed - lapsed.get(member_id, 0)
    # Read under the wallets' locks: no charge of these members is half-way any more.
    taken: dict[str, int] = {}
    for part in chunks(candidates):
        rows = uow.session.execute(
            select(
                Member.id, Member.auto_period_allocated, Member.used_total, Member.period_used_base
            ).where(Member.org_id == org.id, among(uow.session, Member.id, part))
        ).tuples()
        for member_id, received, used_total, base in rows:
            unused = max(0, received - (used_total - base))
            amount = min(spendable.get(member_id, 0), unused)
            if amount > 0:
                taken[member_id] = amount
    if not taken:
        return Settled()
    posting = ledger.Posting(uow.session, org.id, actor, uow.now)
    # The burn so far is posted before the pool's balance changes (services/metering.py).
    metering.settle(uow, org, actor=actor, posting=posting)
    ledger.Posting.debit_wallets(uow.session.connection(), org.id, taken)
    total = sum(taken.values())
    posting.adjust(AccountKind.POOL, total)
    for member_id in sorted(taken):
        posting.record(
            TransferKind.RECLAIM,
            wallet_account(member_id),
            AccountKind.POOL,
            taken[member_id],
            member_id=member_id,
        )
    posting.flush()
    alerts.check(uow, org)  # the pool rose: a crossing announced may be over
    return Settled(total, len(taken))


def set_period(uow: UnitOfWork, org: Org, period: Period | None, timezone: str) -> None:
    """Give the org (new, or locked by the caller) this period and time zone.

    A change of either starts counting afresh: the bounds become those of the period that
    contains now, in the new zone, and every member's counters restart there (nothing
    received so far counts toward the new period's cap, and nothing is reclaimed: an unsettled
    boundary was settled when the org's lock was taken). Setting the same values changes
    nothing.
    """
    wanted = (None if period is None else str(period), timezone)
    if (org.auto_period, org.timezone) == wanted:
        return
    org.auto_period, org.timezone = wanted
    if period is None:
        org.period_started_at = org.period_ends_at = None
    else:
        org.period_started_at, org.period_ends_at = period_bounds(period, timezone, uow.now)
    if inspect(org).persistent:
        _restart_counters(uow, org.id)


def _restart_counters(uow: UnitOfWork, org_id: str) -> None:
    """Start every member's period counters afresh, and forget their loaded copies."""
    uow.session.execute(
        bulk_update(Member)
        .where(
            Member.org_id == org_id,
            (Member.auto_period_allocated != 0) | (Member.period_used_base != Member.used_total),
        )
        .values(auto_period_allocated=0, period_used_base=Member.used_total)
    )
    for member in [obj for obj in uow.session.identity_map.values() if isinstance(obj, Member)]:
        if member.org_id == org_id:
            uow.session.expire(member)


def lock_org(uow: UnitOfWork, org_id: str) -> Org | None:
    """Return the org with its row locked, as it stands (settling nothing: see `load_org`)."""
    return uow.session.scalars(
        select(Org)
        .where(Org.id == org_id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ).one_or_none()


def settle_due(uow: UnitOfWork, org_id: str) -> Settled | None:
    """Settle the org's passed period boundary in a transaction of its own, after posting any
    lot expiry passed (services/expiry.py); None when no boundary was due (or it was settled
    meanwhile)."""

    def apply() -> Settled | None:
        org = lock_org(uow, org_id)
        if org is None:
            return None
        if is_due(org.next_expiry_at, uow.now):
            expiry.post_due(uow, org)
        return settle_locked(uow, org)

    return run_write(uow, apply)


def due_below(uow: UnitOfWork, org_ids: Sequence[str]) -> list[str]:
    """Return the descendants of these orgs (children and grandchildren: a family is three
    levels at most) whose period boundary has passed, in the open transaction."""
    if not org_ids:
        return []
    ids = list(org_ids)
    children = select(Org.id).where(Org.parent_id.in_(ids))
    return list(
        uow.session.scalars(
            select(Org.id)
            .where(
                or_(Org.parent_id.in_(ids), Org.parent_id.in_(children)),
                or_(Org.period_ends_at <= uow.now, Org.next_expiry_at <= uow.now),
            )
            .order_by(Org.id)
        )
    )


def settle_below(uow: UnitOfWork, org_ids: Sequence[str]) -> int:
    """Settle the passed period boundaries of these orgs' descendants, each in a transaction
    of its own, so that a parent's roll-up or list of children reads them settled (a read
    that shows a child's figures crosses its boundary as a read of the child would); return
    how many were due. One indexed query when none is."""
    with uow:
        due = due_below(uow, org_ids)
    for org_id in due:
        settle_due(uow, org_id)
    return len(due)


@dataclass(frozen=True)
class SweepReport:
    """What the worker's pass over due boundaries did."""

    orgs: int = 0
    reclaimed: int = 0


def sweep(uow: UnitOfWork) -> SweepReport:
    """Settle every org whose period boundary or lot expiry has passed, SWEEP_BATCH at a
    time by id, each in a transaction of its own. For the worker."""
    orgs = reclaimed = 0
    due = lookups.orgs_in_batches(
        uow, lambda now: or_(Org.period_ends_at <= now, Org.next_expiry_at <= now), SWEEP_BATCH
    )
    for batch in due:
        for org_id in batch:
            settled = settle_due(uow, org_id)
            if settled is not None:
                orgs += 1
                reclaimed += settled.reclaimed
    return SweepReport(orgs, reclaimed)
