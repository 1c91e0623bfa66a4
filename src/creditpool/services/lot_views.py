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
from typing import Any, Protocol

from sqlalchemy import ColumnElement, and_, false, func, or_, select

from creditpool.domain import metering as arithmetic
from creditpool.domain.lots import PoolLot
from creditpool.domain.model import AccountKind
from creditpool.services import metering
from creditpool.services.ledger import wallet_account
from creditpool.services.lookups import load_org
from creditpool.services.lots import CHUNK, WALLET_PREFIX, Holding, Share, load_holdings
from creditpool.storage.bulk import among
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


def lots_of(
    uow: UnitOfWork, org_id: str, *, after: str | None = None, limit: int | None = None
) -> list[LotView]:
    """Return a page of the org's lots now, in spending order (see `list_lots`)."""
    with uow:
        org = load_org(uow, org_id)
        return list_lots(uow, org, uow.now, after=after, limit=limit)


def list_lots(
    uow: UnitOfWork,
    org: Org,
    at: datetime,
    *,
    after: str | None = None,
    limit: int | None = None,
) -> list[LotView]:
    """Return the org's lots in the order they are spent, with their figures at `at`: all of
    them, or `limit` of them after the lot `after` (none after a lot the org does not have).
    Three queries, however many lots the org has: the page, its holdings, and (only while the
    org burns) the pool's holdings the unposted burn comes from."""
    query = select(Lot).where(Lot.org_id == org.id).order_by(*_SPENDING_ORDER)
    if after is not None:
        cursor = uow.session.get(Lot, (org.id, after))
        if cursor is None:
            return []
        query = query.where(_after(cursor))
    if limit is not None:
        query = query.limit(limit)
    lots = list(uow.session.scalars(query))
    if not lots:
        return []
    pool: dict[str, int] = defaultdict(int)
    wallets: dict[str, int] = defaultdict(int)
    held: dict[str, int] = defaultdict(int)
    in_pool = LotBalance.account_id == AccountKind.POOL
    rows = uow.session.execute(
        select(LotBalance.lot_id, in_pool, func.sum(LotBalance.amount), func.sum(LotBalance.held))
        .where(
            LotBalance.org_id == org.id,
            among(uow.session, LotBalance.lot_id, [lot.id for lot in lots]),
        )
        .group_by(LotBalance.lot_id, in_pool)
    ).tuples()
    for lot_id, pooled, amount, reserved in rows:
        (pool if pooled else wallets)[lot_id] += int(amount)
        held[lot_id] += int(reserved)
    burnt = _unposted_burn(uow, org, at)
    return [
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


# The spending order (lots.Holding.order) in SQL: never-expiring lots after the others.
_SPENDING_ORDER = (
    Lot.priority,
    Lot.expires_at.is_(None),
    Lot.expires_at,
    Lot.created_at,
    Lot.id,
)


def _after(cursor: Lot) -> ColumnElement[bool]:
    """Lots spent after `cursor`, by the spending order."""
    if cursor.expires_at is None:
        later_expiry: ColumnElement[bool] = false()
        same_expiry: ColumnElement[bool] = Lot.expires_at.is_(None)
    else:
        later_expiry = or_(Lot.expires_at.is_(None), Lot.expires_at > cursor.expires_at)
        same_expiry = Lot.expires_at == cursor.expires_at
    older_first = or_(
        Lot.created_at > cursor.created_at,
        and_(Lot.created_at == cursor.created_at, Lot.id > cursor.id),
    )
    return or_(
        Lot.priority > cursor.priority,
        and_(
            Lot.priority == cursor.priority,
            or_(later_expiry, and_(same_expiry, older_first)),
        ),
    )


def _unposted_burn(uow: UnitOfWork, org: Org, at: datetime) -> dict[str, int]:
    """The burn accrued since it was last posted, by lot, as posting it would take it from
    the pool's lots. No query while the org burns nothing."""
    burnt: dict[str, int] = defaultdict(int)
    rate = metering.burn_rate(org)
    if rate == 0:
        return burnt
    holdings = load_holdings(uow.session, org.id, [AccountKind.POOL]).get(AccountKind.POOL, [])
    posted = sum(holding.amount for holding in holdings)
    accrued = arithmetic.accrual(rate=rate, start=org.metered_since, end=at, balance=posted)
    for holding in sorted(holdings, key=Holding.order):
        if accrued == 0:
            break
        part = min(accrued, holding.amount)
        burnt[holding.lot_id] += part
        accrued -= part
    return burnt


class ExpiringOrg(Protocol):
    """What says whether an org has lots to expire: an org row, or a row that read these."""

    @property
    def id(self) -> str:
        """The org's id."""

    @property
    def next_expiry_at(self) -> datetime | None:
        """When its next lot expires; None when none does."""


@dataclass(frozen=True)
class OrgExpiry:
    """An org's id and next expiry, where a query read them without the org's row."""

    id: str
    next_expiry_at: datetime | None


def expiring(uow: UnitOfWork, org: ExpiringOrg, at: datetime) -> tuple[ExpiringView, ...]:
    """Return every expiry instant after `at` at which the pool or a wallet holds something,
    each with what they hold of the lots that lapse then (views.balance_from takes off what
    the burn will spend first, and keeps the first EXPIRING_LISTED). No query for an org
    none of whose lots expires."""
    if org.next_expiry_at is None:
        return ()
    return orgs_expiring(uow, [org], at)[org.id]


def orgs_expiring(
    uow: UnitOfWork, orgs: Sequence[ExpiringOrg], at: datetime
) -> dict[str, tuple[ExpiringView, ...]]:
    """`expiring` of several orgs, in one query per chunk of those with lots to expire."""
    found: dict[str, tuple[ExpiringView, ...]] = {org.id: () for org in orgs}
    ids = sorted(org.id for org in orgs if org.next_expiry_at is not None)
    for start in range(0, len(ids), CHUNK):
        part = ids[start : start + CHUNK]
        chosen = among(uow.session, Lot.org_id, part)
        found.update(_listed(uow, Lot.org_id, chosen, at, listed=None))
    return found


def member_expiring(
    uow: UnitOfWork, org: ExpiringOrg, member_id: str, at: datetime
) -> tuple[ExpiringView, ...]:
    """Return what the member's wallet holds of lots that expire, by instant, soonest first
    (at most EXPIRING_LISTED instants). No query for an org none of whose lots expires."""
    return members_expiring(uow, org, [member_id], at)[member_id]


def expiring_in(holdings: Sequence[Holding], at: datetime) -> tuple[ExpiringView, ...]:
    """`member_expiring` worked out from the wallet's holdings already at hand (a charge read
    them to choose its lots), with no query."""
    by_instant: dict[datetime, int] = defaultdict(int)
    for holding in holdings:
        unheld = holding.amount - holding.held
        if holding.expires_at is not None and holding.expires_at > at and unheld > 0:
            by_instant[holding.expires_at] += unheld
    soonest = sorted(by_instant)[:EXPIRING_LISTED]
    return tuple(ExpiringView(instant, by_instant[instant]) for instant in soonest)


def members_expiring(
    uow: UnitOfWork,
    org: ExpiringOrg,
    member_ids: Sequence[str],
    at: datetime,
    *,
    listed: int | None = EXPIRING_LISTED,
) -> dict[str, tuple[ExpiringView, ...]]:
    """`member_expiring` of several members of one org, in one query per chunk; every
    instant with `listed` None."""
    found: dict[str, tuple[ExpiringView, ...]] = {member_id: () for member_id in member_ids}
    if org.next_expiry_at is None:
        return found
    wallets = sorted({wallet_account(member_id) for member_id in member_ids})
    for start in range(0, len(wallets), CHUNK):
        part = wallets[start : start + CHUNK]
        chosen = (LotBalance.org_id == org.id) & among(uow.session, LotBalance.account_id, part)
        for wallet, views in _listed(uow, LotBalance.account_id, chosen, at, listed).items():
            found[wallet.removeprefix(WALLET_PREFIX)] = views
    return found


def expiring_after_each(
    uow: UnitOfWork, org: ExpiringOrg, charges: Sequence[tuple[str, Sequence[Share]]], at: datetime
) -> list[tuple[ExpiringView, ...]]:
    """What each charge of a batch (its member, and the shares it took, in the batch's order)
    leaves expiring in its member's wallet: what the whole batch leaves, with the member's
    later charges added back. No query for an org none of whose lots expires."""
    if org.next_expiry_at is None:
        return [() for _ in charges]
    members = [member_id for member_id, _ in charges]
    if len(set(members)) == len(members):  # one charge each: what the batch leaves
        once = members_expiring(uow, org, members, at)
        return [once[member_id] for member_id in members]
    left = members_expiring(uow, org, members, at, listed=None)
    running = {member: {view.at: view.amount for view in left[member]} for member in left}
    lot_ids = sorted({lot_id for _, shares in charges for lot_id, _ in shares})
    expiries: dict[str, datetime] = {
        lot_id: expires_at
        for lot_id, expires_at in uow.session.execute(
            select(Lot.id, Lot.expires_at).where(
                Lot.org_id == org.id, among(uow.session, Lot.id, lot_ids), Lot.expires_at > at
            )
        ).tuples()
        if expires_at is not None
    }
    after: list[tuple[ExpiringView, ...]] = []
    for member_id, shares in reversed(charges):
        by_instant = running[member_id]
        soonest = sorted(instant for instant, amount in by_instant.items() if amount > 0)
        after.append(tuple(ExpiringView(t, by_instant[t]) for t in soonest[:EXPIRING_LISTED]))
        for lot_id, part in shares:
            if lot_id in expiries:
                instant = expiries[lot_id]
                by_instant[instant] = by_instant.get(instant, 0) + part
    after.reverse()
    return after


def _listed(
    uow: UnitOfWork, key: Any, chosen: Any, at: datetime, listed: int | None = EXPIRING_LISTED
) -> dict[str, tuple[ExpiringView, ...]]:
    """What lots that expire after `at` hold, summed by `key` (an org or an account) and
    instant; the first `listed` instants of each key (None: all). What pending holds keep is
    left out: it lapses when its hold ends, if the hold does not spend it."""
    query = (
        select(key, Lot.expires_at, func.sum(LotBalance.amount - LotBalance.held))
        .join(LotBalance, (LotBalance.org_id == Lot.org_id) & (LotBalance.lot_id == Lot.id))
        .where(chosen, Lot.expires_at > at, LotBalance.amount > LotBalance.held)
        .group_by(key, Lot.expires_at)
        .order_by(key, Lot.expires_at)
    )
    found: dict[str, list[ExpiringView]] = defaultdict(list)
    for owner, instant, amount in uow.session.execute(query).tuples():
        if listed is None or len(found[owner]) < listed:
            found[owner].append(ExpiringView(instant, int(amount)))
    return {owner: tuple(views) for owner, views in found.items()}


def pools_by_lot(uow: UnitOfWork, orgs: Sequence[ExpiringOrg]) -> dict[str, tuple[PoolLot, ...]]:
    """What each org's pool holds of each lot, in the spending order, for the orgs that have
    lots to expire (a projection of their pools needs it: domain/lots.py); empty for the
    others, which cost no query. A lot still to expire is listed even where the pool holds
    none of it: posting splits the burn at its instant, and so must the projection."""
    found: dict[str, tuple[PoolLot, ...]] = {org.id: () for org in orgs}
    ids = sorted(org.id for org in orgs if org.next_expiry_at is not None)
    in_pool = (
        (LotBalance.org_id == Lot.org_id)
        & (LotBalance.lot_id == Lot.id)
        & (LotBalance.account_id == AccountKind.POOL)
    )
    for start in range(0, len(ids), CHUNK):
        part = ids[start : start + CHUNK]
        rows = uow.session.execute(
            select(
                Lot.org_id,
                func.coalesce(LotBalance.amount, 0),
                Lot.id,
                Lot.priority,
                Lot.expires_at,
                Lot.created_at,
            )
            .outerjoin(LotBalance, in_pool)
            .where(
                among(uow.session, Lot.org_id, part),
                or_(
                    LotBalance.amount > 0,
                    and_(Lot.expired_at.is_(None), Lot.expires_at.is_not(None)),
                ),
            )
        ).tuples()
        held: dict[str, list[Holding]] = defaultdict(list)
        for org_id, amount, lot_id, priority, expires_at, created_at in rows:
            held[org_id].append(Holding(lot_id, int(amount), 0, priority, expires_at, created_at))
        for org_id, holdings in held.items():
            found[org_id] = tuple(
                PoolLot(holding.amount, holding.expires_at)
                for holding in sorted(holdings, key=Holding.order)
            )
    return found
