"""Reading the books: balances at an instant, the ledger, access checks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import bindparam, select

from creditpool.domain import metering as arithmetic
from creditpool.domain.errors import CreditpoolError, InvalidInput, NotFound
from creditpool.domain.model import AccountKind, MemberStatus, Seat
from creditpool.services import lot_views, metering, pool_series
from creditpool.services.lookups import load_org
from creditpool.services.lot_views import ExpiringOrg
from creditpool.services.metering import MeteredOrg
from creditpool.services.pool_series import PoolPoint
from creditpool.services.transactions import run_write
from creditpool.services.views import (
    ORG_ACCOUNTS,
    AccessView,
    BalanceView,
    TransferView,
    balance_from,
    transfer_view,
)
from creditpool.storage.schema import Account, Member, Org, Transfer, table_of
from creditpool.storage.unit_of_work import UnitOfWork

_orgs, _accounts = table_of(Org), table_of(Account)
# A balance read is the hottest read there is: built once, bound per request.
_BALANCE = (
    select(
        *(_orgs.c[name] for name in MeteredOrg.__annotations__),
        _orgs.c.id,
        _orgs.c.next_expiry_at,  # for the lots that expire (lot_views.expiring)
        _accounts.c.id.label("account"),
        _accounts.c.balance,
    )
    .join(_accounts, _accounts.c.org_id == _orgs.c.id)
    .where(_orgs.c.id == bindparam("org"), _accounts.c.id.in_(ORG_ACCOUNTS))
)


def get_balance(uow: UnitOfWork, org_id: str, *, at: datetime | None = None) -> BalanceView:
    """Return the org's balance as it will stand at `at` (now by default, never the past)."""
    with uow:
        (answer,) = balances_at(uow, org_id, [at])
        if isinstance(answer, CreditpoolError):
            raise answer
        return answer


def balances_at(
    uow: UnitOfWork, org_id: str, instants: Sequence[datetime | None]
) -> list[BalanceView | CreditpoolError]:
    """The org's balance at each instant (None: now), from one read, inside an open block;
    an instant in the past is refused on its own."""
    # The org's burn and its accounts' balances in one round trip.
    rows = uow.session.connection().execute(_BALANCE, {"org": org_id}).all()
    if not rows:
        return [NotFound(f"no org {org_id}")] * len(instants)
    accounts = {row.account: row.balance for row in rows}
    org = cast(ExpiringOrg, rows[0])
    pool = lot_views.pools_by_lot(uow, [org])[org.id]
    answers: list[BalanceView | CreditpoolError] = []
    for at in instants:
        if at is not None and at < uow.now:
            past = "a balance can be read now or in the future, not in the past"
            answers.append(InvalidInput(past))
        else:
            instant = at or uow.now
            lapsing = lot_views.expiring(uow, org, instant)
            answers.append(
                balance_from(cast(MeteredOrg, rows[0]), accounts, instant, lapsing, pool)
            )
    return answers


def list_transfers(
    uow: UnitOfWork,
    org_id: str,
    *,
    member_id: str | None = None,
    kind: str | None = None,
    before: str | None = None,
    limit: int = 50,
) -> list[TransferView]:
    """Return the org's transfers, newest first, optionally for one member or of one kind."""
    with uow:
        load_org(uow, org_id)
        query = (
            select(Transfer)
            .where(Transfer.org_id == org_id)
            .order_by(Transfer.id.desc())
            .limit(limit)
        )
        if member_id is not None:
            query = query.where(Transfer.member_id == member_id)
        if kind is not None:
            query = query.where(Transfer.kind == kind)
        if before is not None:
            query = query.where(Transfer.id < before)
        return [transfer_view(row) for row in uow.session.scalars(query)]


def check_access(uow: UnitOfWork, org_id: str, member_id: str) -> AccessView:
    """Return whether the org's pool pays for this member's seat right now, and why not."""
    with uow:
        (answer,) = access_of(uow, org_id, [member_id])
        if isinstance(answer, CreditpoolError):
            raise answer
        return answer


_orgs_pool = (
    select(
        *(_orgs.c[name] for name in MeteredOrg.__annotations__),
        _accounts.c.balance.label("pool_balance"),
    )
    .join(_accounts, (_accounts.c.org_id == _orgs.c.id) & (_accounts.c.id == AccountKind.POOL))
    .where(_orgs.c.id == bindparam("org"))
)
_members = table_of(Member)
_SEATS = select(_members.c.id, _members.c.status, _members.c.seat).where(
    _members.c.org_id == bindparam("org"),
    _members.c.id.in_(bindparam("ids", expanding=True)),
)


def access_of(
    uow: UnitOfWork, org_id: str, member_ids: Sequence[str]
) -> list[AccessView | CreditpoolError]:
    """Whether the pool pays for each member's seat now, from two reads (the org and its
    pool, the members), inside an open block; an unknown member is refused on its own."""
    connection = uow.session.connection()
    org = connection.execute(_orgs_pool, {"org": org_id}).one_or_none()
    if org is None:
        return [NotFound(f"no org {org_id}")] * len(member_ids)
    wanted = sorted(set(member_ids))
    seats = {row.id: row for row in connection.execute(_SEATS, {"org": org_id, "ids": wanted})}
    meters_licensed = org.rate_licensed > 0
    paying = metering.available(org, org.pool_balance, uow.now) if meters_licensed else 0
    answers: list[AccessView | CreditpoolError] = []
    for member_id in member_ids:
        member = seats.get(member_id)
        if member is None:
            answers.append(NotFound(f"no member {member_id} in this org"))
            continue
        access, reason = arithmetic.seat_access(
            removed=member.status == MemberStatus.REMOVED,
            seat=Seat(member.seat),
            paused=org.paused,
            meters_licensed=meters_licensed,
            pool_available=paying,
        )
        answers.append(AccessView(access, reason))
    return answers


@dataclass(frozen=True)
class PoolHistory:
    """The pool's balance over time; when the burn running now began (None: none runs) and
    when it ran the pool dry, if it has."""

    points: list[PoolPoint]
    burning_since: datetime | None
    dry_since: datetime | None = None


def pool_history(uow: UnitOfWork, org_id: str, *, limit: int = 2000) -> PoolHistory:
    """Return the pool's balance after each move, oldest first (the last `limit`): a point a
    day for the days that are over (kept in a series, rolled up on the first read after a day
    closes), a point a batch since. The burn is posted (kind metering, saying when it ran) at
    the instant before anything else moves the pool, and whenever the rate changes."""

    def read() -> PoolHistory:
        org = load_org(uow, org_id)
        pool_series.roll_up(uow, org_id)
        points, balance = pool_series.pool_moves(uow, org_id, limit=limit)
        rate = metering.burn_rate(org)
        if rate == 0:
            return PoolHistory(points, None)
        until = metering.burnt_until(rate, org.metered_since, balance, uow.now)
        return PoolHistory(points, org.metered_since, until if until < uow.now else None)

    # A read that may write the days rolled up: one transaction, committed by the write path.
    return run_write(uow, read)
