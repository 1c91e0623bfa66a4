"""An org's roll-up: its figures summed with those of all its descendants.

A family is at most three levels deep, so an org's descendants are its children and their
children: one query over the `parent_id` index finds them all, with their metering columns and
the balances of their pools and system accounts. An org without children pays only that one
query (none at the deepest level, which can have no children); the seat counts stand for its
active members (the audit holds them equal), so counting members costs nothing.

Each pool's `available` is taken now, its seat burn included, as the org's own balance is;
`allocated` is what sits in the members' wallets of every org of the subtree.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, or_, select

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


def rollup_of(
    uow: UnitOfWork, org: Org, own: OwnFigures, *, summed_usage: bool = True
) -> RollupView:
    """Return the roll-up of an org over its subtree, from its own figures and one query (one
    more for the usage metrics when it has descendants and `summed_usage`)."""
    members = org.licensed_seats + org.unlicensed_seats + org.external_seats
    alone = RollupView(1, members, own.available, own.allocated, own.used, own.metered, own.usage)
    if org.depth >= MAX_DEPTH:
        return alone
    rows = uow.session.connection().execute(_DESCENDANTS, {"org": org.id}).all()
    if not rows:
        return alone
    descendants: dict[str, Any] = {}
    accounts: dict[str, dict[str, int]] = defaultdict(dict)
    for row in rows:
        descendants[row.id] = row
        accounts[row.id][row.account] = int(row.balance)
    figures = [_figures_of(descendants[key], accounts[key], uow.now) for key in descendants]
    usage = dict(own.usage)
    if summed_usage:
        usage = _usage_of(uow, [org.id, *descendants])
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
