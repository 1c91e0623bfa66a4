"""Pools inside pools: child orgs, and credits moving between a parent's pool and a child's.

A district funds its schools and a school its classes: an org may have a parent, three levels
at most (domain/model.py's MAX_DEPTH). Each org keeps its own pool, members, settings and
ledger. Credits cross between two ledgers only here, each move all or nothing in one
transaction, recorded in both with one shared batch id:

- an allotment is `to_child` in the parent (pool -> its `children` account) and `from_parent`
  in the child (its `parent` account -> pool);
- taking back is `to_parent` in the child (pool -> `parent`) and `from_child` in the parent
  (`children` -> pool).

So a parent's `children` balance is always minus the sum of its children's `parent` balances,
and every family transfer has its twin of the same batch id and amount in the other ledger;
`creditpool audit` checks both. Each side's transfer names the other org as its reference.

Both pools' seat burn is settled first, so what bounds a move is `available`, burn included.
Rows are locked parent before child (services/ledger.py's lock order); a child's parent never
changes, so which org is the parent is read before any lock is taken.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

from sqlalchemy import and_, or_, select

from creditpool.domain.amounts import format_credits
from creditpool.domain.errors import InsufficientCredits, InvalidInput, NotFound, NotReturnable
from creditpool.domain.lots import PoolLot
from creditpool.domain.model import MAX_DEPTH, AccountKind, TransferKind
from creditpool.domain.policies import OrgSettings, SettingsChange
from creditpool.domain.text import clean_name
from creditpool.services import alerts, family_rollup, ledger, lot_views, lots, metering, periods
from creditpool.services.credits import check_amount
from creditpool.services.family_rollup import RollupView
from creditpool.services.lookups import load_org
from creditpool.services.orgs import open_org
from creditpool.services.totals import combine, exact_sum
from creditpool.services.transactions import run_write
from creditpool.services.views import (
    BalanceView,
    OrgView,
    balance_from,
    balance_view,
    org_view,
    settings_of,
)
from creditpool.storage.schema import Org, Transfer
from creditpool.storage.unit_of_work import UnitOfWork

__all__ = [
    "FamilyTransferView",
    "RollupView",
    "allot_to_child",
    "ancestors_of",
    "create_child",
    "family_received",
    "list_children",
    "take_back_from_child",
]


@dataclass(frozen=True)
class FamilyTransferView:
    """A move between a parent's pool and a child's: its batch, amount, and both balances
    after it."""

    batch_id: str
    amount: int
    parent: BalanceView
    child: BalanceView


def create_child(
    uow: UnitOfWork,
    parent_id: str,
    *,
    name: str,
    owner_user_id: str,
    settings: SettingsChange | None = None,
    actor: str,
    idempotency_key: str | None = None,
) -> OrgView:
    """Open an org under `parent_id`, one level deeper in its family; InvalidInput past the
    third level. The child starts with an empty pool, and with its burn stopped while the
    parent or one of its ancestors is paused."""
    name = clean_name(name)
    chosen = (settings or SettingsChange()).applied_to(OrgSettings())

    def apply() -> OrgView:
        parent = load_org(uow, parent_id, lock=True)
        if parent.depth >= MAX_DEPTH:
            raise InvalidInput(
                f"an org at level {parent.depth} cannot have children: "
                f"a family is at most {MAX_DEPTH} levels deep"
            )
        child = open_org(uow, name=name, owner_user_id=owner_user_id, chosen=chosen, parent=parent)
        ledger.open_family_account(uow.session, parent.id, AccountKind.CHILDREN)
        ledger.open_family_account(uow.session, child.id, AccountKind.PARENT)
        uow.session.flush()
        return org_view(uow, child)

    return run_write(
        uow,
        apply,
        org_id=parent_id,
        actor=actor,
        key=idempotency_key,
        operation="create_child",
        arguments={"name": name, "owner": owner_user_id, "settings": repr(chosen)},
        result_type=OrgView,
    )


def list_children(
    uow: UnitOfWork, org_id: str, *, after: str | None = None, limit: int | None = None
) -> list[OrgView]:
    """Return the org's children by name, each with its balance and roll-up: all of them, or
    `limit` of them after the child `after` (none after a child it does not have). Their
    figures cost two queries, however many children there are. Children (and theirs) past a
    period boundary are settled first (services/periods.settle_below)."""
    periods.settle_below(uow, [org_id])
    with uow:
        load_org(uow, org_id)
        query = select(Org).where(Org.parent_id == org_id).order_by(Org.name, Org.id)
        if after is not None:
            name = uow.session.scalar(
                select(Org.name).where(Org.id == after, Org.parent_id == org_id)
            )
            if name is None:
                return []
            query = query.where(or_(Org.name > name, and_(Org.name == name, Org.id > after)))
        if limit is not None:
            query = query.limit(limit)
        children = list(uow.session.scalars(query))
        read = family_rollup.children_figures(uow, org_id, children)
        lapsing = lot_views.orgs_expiring(uow, children, uow.now)
        pools = lot_views.pools_by_lot(uow, children)
        return [
            _child_view(uow, child, read[child.id], lapsing[child.id], pools[child.id])
            for child in children
        ]


def allot_to_child(
    uow: UnitOfWork,
    parent_id: str,
    child_id: str,
    amount: int,
    *,
    actor: str,
    idempotency_key: str | None = None,
) -> FamilyTransferView:
    """Move `amount` from the parent's pool to its child's; InsufficientCredits, and nothing
    moves, when the parent's available (burn included) cannot cover it."""
    check_amount(amount)

    def apply() -> FamilyTransferView:
        parent, child = _lock_family(uow, parent_id, child_id)
        up = ledger.Posting(uow.session, parent.id, actor, uow.now)
        down = ledger.Posting(uow.session, child.id, actor, uow.now, batch_id=up.batch_id)
        metering.settle(uow, parent, actor=actor, posting=up)
        metering.settle(uow, child, actor=actor, posting=down)
        if not up.withdraw(AccountKind.POOL, amount):
            available = metering.pool_balance(uow, parent.id)
            raise InsufficientCredits(
                f"the pool has {format_credits(available)} available; "
                f"{format_credits(amount)} needed"
            )
        _move(up, down, amount, downward=True, parent=parent, child=child)
        return _finish(uow, parent, child, up, down, amount)

    return run_write(
        uow,
        apply,
        org_id=parent_id,
        actor=actor,
        key=idempotency_key,
        operation="allot_to_child",
        arguments={"child": child_id, "amount": amount},
        result_type=FamilyTransferView,
    )


def take_back_from_child(
    uow: UnitOfWork,
    parent_id: str,
    child_id: str,
    amount: int | None = None,
    *,
    actor: str,
    idempotency_key: str | None = None,
) -> FamilyTransferView:
    """Move `amount` (None: all the child's available) from the child's pool back to its
    parent's; NotReturnable when the child forbids returns, InsufficientCredits when its
    available (burn included) is less. Nothing moves when either refuses."""
    if amount is not None:
        check_amount(amount)

    def apply() -> FamilyTransferView:
        parent, child = _lock_family(uow, parent_id, child_id)
        if not child.returnable:
            raise NotReturnable(f"{child.name} does not let credits go back from its pool")
        up = ledger.Posting(uow.session, parent.id, actor, uow.now)
        down = ledger.Posting(uow.session, child.id, actor, uow.now, batch_id=up.batch_id)
        # Only what came down from the parent goes back up, spent in the usual order.
        came_down = lots.returnable(uow.session, child.id, uow.now)
        taken = amount
        if taken is None:  # all the child's available now, burn included
            taken = min(
                metering.pool_available(uow, child, uow.now),
                sum(holding.spendable(uow.now) for holding in came_down),
            )
        if taken:
            # Only a move posts the burns: settling for nothing would split them at an
            # arbitrary instant, and each piece's rounding would drift the pools.
            metering.settle(uow, parent, actor=actor, posting=up)
            metering.settle(uow, child, actor=actor, posting=down)
            came_down = lots.returnable(uow.session, child.id, uow.now)
            if amount is None:  # the burn just posted may have spent some of what came down
                taken = sum(holding.spendable(uow.now) for holding in came_down)
        returnable = sum(holding.spendable(uow.now) for holding in came_down)
        if taken and (returnable < taken or not down.withdraw(AccountKind.POOL, taken)):
            raise InsufficientCredits(
                f"{child.name}'s pool has {format_credits(returnable)} available "
                f"from {parent.name}; {format_credits(taken)} asked back"
            )
        if taken:  # an empty pool gives nothing back and records no transfer
            shares = lots.take(came_down, taken, uow.now)
            _move(up, down, taken, downward=False, parent=parent, child=child, shares=shares)
        return _finish(uow, parent, child, up, down, taken)

    return run_write(
        uow,
        apply,
        org_id=parent_id,
        actor=actor,
        key=idempotency_key,
        operation="take_back_from_child",
        arguments={"child": child_id, "amount": amount},
        result_type=FamilyTransferView,
    )


def ancestors_of(uow: UnitOfWork, org_id: str) -> list[tuple[str, str]]:
    """Return (id, name) of the org's ancestors from its parent up; [] at the top. Joins the
    caller's open transaction if there is one."""
    with _reading(uow):
        found: list[tuple[str, str]] = []
        parent_id = uow.session.scalar(select(Org.parent_id).where(Org.id == org_id))
        while parent_id is not None and len(found) < MAX_DEPTH:
            row = uow.session.execute(
                select(Org.id, Org.name, Org.parent_id).where(Org.id == parent_id)
            ).one()
            found.append((row.id, row.name))
            parent_id = row.parent_id
        return found


def family_received(uow: UnitOfWork, org_id: str) -> tuple[int, int]:
    """Return what the org received from its parent in all, and what it gave back to it.
    Joins the caller's open transaction if there is one."""
    with _reading(uow):
        sums = {
            kind: combine(high, low)
            for kind, high, low in uow.session.execute(
                select(Transfer.kind, *exact_sum(Transfer.amount))
                .where(
                    Transfer.org_id == org_id,
                    Transfer.kind.in_([TransferKind.FROM_PARENT, TransferKind.TO_PARENT]),
                )
                .group_by(Transfer.kind)
            ).tuples()
        }
        return sums.get(TransferKind.FROM_PARENT, 0), sums.get(TransferKind.TO_PARENT, 0)


def _child_view(
    uow: UnitOfWork,
    child: Org,
    read: family_rollup.ChildFigures,
    lapsing: Sequence[lot_views.ExpiringView],
    pool: Sequence[PoolLot],
) -> OrgView:
    """The view of a listed child from what `children_figures`, `orgs_expiring` and
    `pools_by_lot` read: what `org_view` gives."""
    balance = balance_from(child, read.accounts, uow.now, lapsing, pool)
    own = family_rollup.OwnFigures(
        balance.available, balance.allocated, balance.used, balance.metered, read.usage
    )
    return OrgView(
        id=child.id,
        name=child.name,
        paused=child.paused,
        invite_code=child.invite_code,
        settings=settings_of(child),
        balance=balance,
        usage=read.usage,
        created_at=child.created_at,
        parent_id=child.parent_id,
        rollup=family_rollup.rollup_from(child, own, read, uow.now),
    )


def _reading(uow: UnitOfWork) -> AbstractContextManager[object]:
    """A block of its own for a read, unless the caller's transaction is open already."""
    try:
        uow.session  # noqa: B018 - raises outside a block
    except RuntimeError:
        return uow
    return nullcontext()


def _lock_family(uow: UnitOfWork, parent_id: str, child_id: str) -> tuple[Org, Org]:
    """Lock the parent's row, then the child's; NotFound unless `child_id` is a child of
    `parent_id`. A child's parent never changes, so it is checked before the locks."""
    found = uow.session.scalar(select(Org.parent_id).where(Org.id == child_id))
    if found != parent_id:
        raise NotFound(f"no child {child_id} of org {parent_id}")
    parent = load_org(uow, parent_id, lock=True)
    return parent, load_org(uow, child_id, lock=True)


def _move(
    up: ledger.Posting,
    down: ledger.Posting,
    amount: int,
    *,
    downward: bool,
    parent: Org,
    child: Org,
    shares: Sequence[lots.Share] | None = None,
) -> None:
    """Post one move in both ledgers, the giving pool already withdrawn: the giving side (pool
    -> its family account) first, then the receiving side (family account -> pool), in the
    lots the giving side gave (services/lots.py). `downward`: an allotment, parent to child;
    otherwise taking back, child to parent, of the child's lots `shares`."""
    if downward:
        giver, given_to, give, giver_ref = up, AccountKind.CHILDREN, TransferKind.TO_CHILD, child
        taker, taken_from, take, taker_ref = (
            down,
            AccountKind.PARENT,
            TransferKind.FROM_PARENT,
            parent,
        )
    else:
        giver, given_to, give, giver_ref = down, AccountKind.PARENT, TransferKind.TO_PARENT, parent
        taker, taken_from, take, taker_ref = (
            up,
            AccountKind.CHILDREN,
            TransferKind.FROM_CHILD,
            child,
        )
    # Each family account mirrors the other's: the giver's rises by what the taker's falls.
    giver.adjust(given_to, amount)
    given = giver.record(
        give, AccountKind.POOL, given_to, amount, reference=giver_ref.id, lots=shares
    )
    giver.flush()
    gave = lots.shares_of(given["lots"])
    if downward:
        received = lots.carry_down(giver.session, parent.id, child.id, gave, giver.now)
    else:
        received = lots.carry_up(giver.session, child.id, gave)
    taker.adjust(taken_from, -amount)
    taker.adjust(AccountKind.POOL, amount)
    taker.record(take, taken_from, AccountKind.POOL, amount, reference=taker_ref.id, lots=received)


def _finish(
    uow: UnitOfWork,
    parent: Org,
    child: Org,
    up: ledger.Posting,
    down: ledger.Posting,
    amount: int,
) -> FamilyTransferView:
    """Write both ledgers' transfers, announce what the pools now show, and say what moved."""
    up.flush()
    down.flush()
    if amount:
        alerts.check(uow, parent)
        alerts.check(uow, child)
    return FamilyTransferView(
        batch_id=up.batch_id,
        amount=amount,
        parent=balance_view(uow, parent, uow.now),
        child=balance_view(uow, child, uow.now),
    )
