"""An org's roll-up: its figures summed with those of all its descendants.

A family is at most three levels deep, so an org's descendants are its children and their
children: one query over the `parent_id` index finds them all, with their metering columns and
the balances of their pools and system accounts. An org without children pays only that one
query (none at the deepest level, which can have no children); the seat counts stand for its
active members (the audit holds them equal), so counting members costs nothing.

Each pool's `available` is taken now, its seat burn included, as the org's own balance is;
`allocated` is what sits in the members' wallets of every org of the subtree.

A list of children reads them all at once (`children_figures`): one query for the accounts of
the children and of their descendants, one for their usage metrics, whatever their number.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, bindparam, literal, or_, select, tuple_

from creditpool.domain import metering as arithmetic
from creditpool.domain.model import MAX_DEPTH, AccountKind
from creditpool.services import metering
from creditpool.services.totals import combine, exact_sum
from creditpool.storage.schema import Account, Org, UsageTotal, table_of
from creditpool.storage.unit_of_work import UnitOfWork

_orgs, _accounts, _totals = table_of(Org), table_of(Account), table_of(UsageTotal)
_children = _orgs.alias("children")
# The accounts that are not wallets: the wallets hold what these do not (they sum to zero).
_BOOK_ACCOUNTS = [str(kind) for kind in AccountKind if kind != AccountKind.WALLET]

# Every descendant of an org (children, grandchildren) with what its figures are made of: a
# row per account. Built once, bound per read.
_DESCENDANTS = (
    select(
        _orgs.c.id,
        *(_orgs.c[name] for name in metering.MeteredOrg.__annotations__),
        _accounts.c.id.label("account"),
        _accounts.c.balance,
    )
    .join(_accounts, _accounts.c.org_id == _orgs.c.id)
    .where(
        or_(
            _orgs.c.parent_id == bindparam("org"),
            _orgs.c.parent_id.in_(
                select(_children.c.id).where(_children.c.parent_id == bindparam("org"))
            ),
        ),
        _accounts.c.id.in_(_BOOK_ACCOUNTS),
    )
)
_USAGE = (
    select(_totals.c.metric, *exact_sum(_totals.c.total))
    .where(_totals.c.org_id.in_(bindparam("orgs", expanding=True)))
    .group_by(_totals.c.metric)
)
# The same figures for a list of children and their descendants, filtered per read.
_SUBTREE_ACCOUNTS = select(
    _orgs.c.id,
    _orgs.c.parent_id,
    *(_orgs.c[name] for name in metering.MeteredOrg.__annotations__),
    _accounts.c.id.label("account"),
    _accounts.c.balance,
).join(
    _accounts,
    and_(_accounts.c.org_id == _orgs.c.id, _accounts.c.id.in_(_BOOK_ACCOUNTS)),
)
_SUBTREE_USAGE: Select[Any] = (
    select(_totals.c.org_id, _totals.c.metric, *exact_sum(_totals.c.total))
    .group_by(_totals.c.org_id, _totals.c.metric)
    .order_by(_totals.c.org_id, _totals.c.metric)
)


@dataclass(frozen=True)
class RollupView:
    """An org and all its descendants together: how many orgs and active members, and their
    pools' credits now (burn included), in wallets, used, burnt by seats, and usage metrics."""

    orgs: int
    members: int
    available: int
    allocated: int
    used: int
    metered: int
    usage: dict[str, int]


@dataclass(frozen=True)
class OwnFigures:
    """The org's own figures, already read for its view: the roll-up starts from them."""

    available: int
    allocated: int
    used: int
    metered: int
    usage: dict[str, int]


@dataclass
class ChildFigures:
    """What a child's view and roll-up are made of, read with its siblings': the balances of
    its accounts other than wallets, its usage metrics, and the same of its descendants."""

    accounts: dict[str, int] = field(default_factory=dict)
    usage: dict[str, int] = field(default_factory=dict)
    descendants: dict[str, Any] = field(default_factory=dict)  # id -> row of metering columns
    descendant_accounts: dict[str, dict[str, int]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    subtree_usage: dict[str, int] = field(default_factory=dict)  # its own and descendants'


def rollup_of(
    uow: UnitOfWork, org: Org, own: OwnFigures, *, summed_usage: bool = True
) -> RollupView:
    """Return the roll-up of an org over its subtree, from its own figures and one query (one
    more for the usage metrics when it has descendants and `summed_usage`)."""
    if org.depth >= MAX_DEPTH:
        return _summed(org, own, {}, {}, own.usage, uow.now)
    rows = uow.session.connection().execute(_DESCENDANTS, {"org": org.id}).all()
    descendants: dict[str, Any] = {}
    accounts: dict[str, dict[str, int]] = defaultdict(dict)
    for row in rows:
        descendants[row.id] = row
        accounts[row.id][row.account] = int(row.balance)
    usage = own.usage
    if descendants and summed_usage:
        usage = _usage_of(uow, [org.id, *descendants])
    return _summed(org, own, descendants, accounts, usage, uow.now)


def children_figures(
    uow: UnitOfWork, parent_id: str, children: Sequence[Org]
) -> dict[str, ChildFigures]:
    """Read the figures of some of the parent's children, given in the order the database
    sorts them by (name, id), and of their descendants: two queries, however many they are."""
    figures = {child.id: ChildFigures() for child in children}
    if not children:
        return figures
    first, last = children[0], children[-1]
    # The children are named by the span of (name, id) they cover, not by a list of ids: the
    # statement stays the same size for any number and within every engine's limit on bound
    # parameters. A child made meanwhile in that span is read too, and left out below.
    chosen = select(_orgs.c.id).where(
        _orgs.c.parent_id == parent_id,
        tuple_(_orgs.c.name, _orgs.c.id).between(
            tuple_(literal(first.name), literal(first.id)),
            tuple_(literal(last.name), literal(last.id)),
        ),
    )
    # A child is at the second level or below, so its only descendants are its children.
    subtree = or_(_orgs.c.id.in_(chosen), _orgs.c.parent_id.in_(chosen))
    connection = uow.session.connection()
    parent_of: dict[str, str] = {}
    for row in connection.execute(_SUBTREE_ACCOUNTS.where(subtree)):
        if row.id in figures:
            figures[row.id].accounts[row.account] = int(row.balance)
        elif row.parent_id in figures:
            parent_of[row.id] = row.parent_id
            figures[row.parent_id].descendants[row.id] = row
            figures[row.parent_id].descendant_accounts[row.id][row.account] = int(row.balance)
    usage = _SUBTREE_USAGE.where(_totals.c.org_id.in_(select(_orgs.c.id).where(subtree)))
    for org_id, metric, high, low in connection.execute(usage).tuples():
        total = combine(high, low)
        owner = figures.get(org_id) or figures.get(parent_of.get(org_id, ""))
        if owner is None:  # an org made meanwhile, not in the list
            continue
        if org_id in figures:
            owner.usage[metric] = total
        owner.subtree_usage[metric] = owner.subtree_usage.get(metric, 0) + total
    return figures


def rollup_from(org: Org, own: OwnFigures, read: ChildFigures, at: datetime) -> RollupView:
    """Return the roll-up of a child at `at` from its own figures and what
    `children_figures` read: the same as `rollup_of` gives."""
    if not read.descendants:
        return _summed(org, own, {}, {}, own.usage, at)
    usage = dict(sorted(read.subtree_usage.items()))
    return _summed(org, own, read.descendants, read.descendant_accounts, usage, at)


def _summed(
    org: Org,
    own: OwnFigures,
    descendants: Mapping[str, Any],
    accounts: Mapping[str, Mapping[str, int]],
    usage: dict[str, int],
    at: datetime,
) -> RollupView:
    """Return the roll-up of an org: its own figures plus those of its descendants."""
    members = org.licensed_seats + org.unlicensed_seats + org.external_seats
    figures = [_figures_of(descendants[key], accounts[key], at) for key in descendants]
    return RollupView(
        orgs=1 + len(descendants),
        members=members
        + sum(
            row.licensed_seats + row.unlicensed_seats + row.external_seats
            for row in descendants.values()
        ),
        available=own.available + sum(f[0] for f in figures),
        allocated=own.allocated + sum(f[1] for f in figures),
        used=own.used + sum(f[2] for f in figures),
        metered=own.metered + sum(f[3] for f in figures),
        usage=usage,
    )


def _figures_of(
    org: metering.MeteredOrg, accounts: Mapping[str, int], at: datetime
) -> tuple[int, int, int, int]:
    """Return (available, allocated, used, metered) of one org at `at`, burn included."""
    pool = accounts.get(AccountKind.POOL, 0)
    rate = metering.burn_rate(org)
    accrued = arithmetic.accrual(rate=rate, start=org.metered_since, end=at, balance=pool)
    in_wallets = -sum(accounts.values())
    used = accounts.get(AccountKind.USAGE, 0)
    metered = accounts.get(AccountKind.METERED, 0) + accrued
    return pool - accrued, in_wallets, used, metered


def _usage_of(uow: UnitOfWork, org_ids: list[str]) -> dict[str, int]:
    """Return the usage metrics summed over these orgs' members."""
    rows = uow.session.connection().execute(_USAGE, {"orgs": org_ids}).tuples()
    return {metric: combine(high, low) for metric, high, low in rows}
