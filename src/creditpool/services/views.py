"""What services return: plain, frozen read models built from the rows.

Amounts are integers of micro-credits; the interfaces format them. Lists of members are built
with one query per kind of figure, not one per member.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, func, literal, null, select, union_all

from creditpool.domain import metering as arithmetic
from creditpool.domain.lots import PoolLot, project
from creditpool.domain.model import (
    AccountKind,
    HoldStatus,
    MemberStatus,
    Period,
    Role,
    Seat,
)
from creditpool.domain.policies import Alerts, AutoAllocation, OrgSettings
from creditpool.services import metering
from creditpool.services.family_rollup import OwnFigures, RollupView, rollup_of
from creditpool.services.ledger import CHUNK, WALLET_PREFIX, balances
from creditpool.services.lot_views import (
    EXPIRING_LISTED,
    ExpiringView,
    expiring,
    members_expiring,
    pools_by_lot,
)
from creditpool.services.totals import combine, exact_sum
from creditpool.storage.bulk import among
from creditpool.storage.schema import (
    Account,
    GroupMember,
    Hold,
    Member,
    Org,
    Transfer,
    UsageTotal,
    User,
)
from creditpool.storage.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class BalanceView:
    """An org's credits at one instant, seat burn included."""

    at: datetime
    available: int  # pool credits that can be allotted
    allocated: int  # credits sitting in member wallets
    purchased: int
    used: int
    metered: int
    burn_rate_per_year: int
    burn_rate_per_day: int
    depletes_at: datetime | None
    expired: int  # what lots left in the pool and wallets when they lapsed, so far
    # The next expiry instants after `at` with what lapses then (none for an org whose lots
    # never expire, which costs no query).
    expiring: tuple[ExpiringView, ...] = ()


@dataclass(frozen=True)
class OrgView:
    """An org with its settings, balance and summed usage metrics; its parent (None at the
    top) and the roll-up of its figures over itself and all its descendants."""

    id: str
    name: str
    paused: bool
    invite_code: str | None  # None for a caller that may not see it (services.auth.org_seen_by)
    settings: OrgSettings
    balance: BalanceView
    usage: dict[str, int]
    created_at: datetime
    parent_id: str | None
    rollup: RollupView


@dataclass(frozen=True)
class MemberView:
    """A membership with its wallet figures and usage totals."""

    id: str
    org_id: str
    user_id: str
    email: str
    name: str
    role: Role
    seat: Seat
    status: MemberStatus
    credits_available: int  # balance less open holds: what it can spend now
    credits_held: int
    credits_balance: int  # in the wallet, held included
    credits_allocated: int  # ever allotted, manually and automatically
    credits_used: int
    auto_allocated: int
    # What counts toward the automatic cap: received automatically since the org's period
    # began (with a period; without one, ever), and when the period ends (None: no period).
    auto_allocated_this_period: int
    period_ends_at: datetime | None
    usage: dict[str, int]
    groups: list[str]
    access: bool
    access_reason: str
    joined_at: datetime
    removed_at: datetime | None
    credits_expiring: tuple[ExpiringView, ...] = ()  # of the wallet, by instant, soonest first


@dataclass(frozen=True)
class LotShareView:
    """What one lot gave to a transfer."""

    lot_id: str
    amount: int


@dataclass(frozen=True)
class TransferView:
    """One movement of credits."""

    id: str
    batch_id: str
    kind: str
    debit_account: str
    credit_account: str
    amount: int
    member_id: str | None
    hold_id: str | None
    reference: str | None
    metrics: dict[str, int] | None
    actor: str
    created_at: datetime
    lots: tuple[LotShareView, ...] = ()


@dataclass(frozen=True)
class HoldView:
    """Credits reserved in a wallet."""

    id: str
    member_id: str
    amount: int
    status: HoldStatus
    captured: int | None
    expires_at: datetime
    reference: str | None
    created_at: datetime


@dataclass(frozen=True)
class BatchResult:
    """The outcome of an allocation or revocation: one batch, its total, the members after."""

    batch_id: str
    total: int
    members: list[MemberView] = field(default_factory=list)


@dataclass(frozen=True)
class UsageResult:
    """The usage transfer and the member after it."""

    transfer: TransferView
    member: MemberView
    auto_allocated: int = 0  # credits topped up automatically before the charge


@dataclass(frozen=True)
class GroupView:
    """A class inside an org."""

    id: str
    name: str
    member_count: int


@dataclass(frozen=True)
class AccessView:
    """Whether the org's pool pays for a member's seat right now, and why not."""

    access: bool
    reason: str


def settings_of(org: Org) -> OrgSettings:
    """Return an org's settings as the domain value."""
    return OrgSettings(
        returnable=org.returnable,
        auto_allocation=AutoAllocation(
            enabled=org.auto_enabled,
            bundle=org.auto_bundle,
            max_per_member=org.auto_max_per_member,
            period=None if org.auto_period is None else Period(org.auto_period),
            reclaim=org.auto_reclaim,
        ),
        seat_rates=metering.seat_rates(org),
        alerts=Alerts(low_balance=org.alert_low_balance, days_left=org.alert_days_left),
        timezone=org.timezone,
    )


def received_this_period(auto_period: str | None, period_allocated: int, ever: int) -> int:
    """What counts toward a member's automatic cap: what it received automatically since the
    period began, or ever when the org has no period."""
    return ever if auto_period is None else period_allocated


ORG_ACCOUNTS = [str(kind) for kind in AccountKind if kind != AccountKind.WALLET]


def balance_view(uow: UnitOfWork, org: Org, at: datetime) -> BalanceView:
    """Return the org's balance as it will stand at `at`, at the current rate."""
    accounts = balances(uow.session, org.id, ORG_ACCOUNTS)
    pool = pools_by_lot(uow, [org])[org.id]
    return balance_from(org, accounts, at, expiring(uow, org, at), pool)


def balance_from(
    org: metering.MeteredOrg,
    accounts: dict[str, int],
    at: datetime,
    lapsing: Sequence[ExpiringView] = (),
    pool_lots: Sequence[PoolLot] = (),
) -> BalanceView:
    """Return the balance at `at` of an org whose pool and system accounts hold `accounts`,
    and whose lots lapse as `lapsing` says (lot_views.expiring). With `pool_lots` (what the
    pool holds by lot, lot_views.pools_by_lot: given for an org with lots to expire), the
    pool's expiries before `at` count, and its running out comes with the expiry that leaves
    it empty if that is sooner than the burn alone would: domain/lots.py."""
    pool = accounts[AccountKind.POOL]
    rate = metering.burn_rate(org)
    if pool_lots:
        ahead = project(rate=rate, since=org.metered_since, lots=pool_lots, at=at)
        burnt, lapsed, depletes_at = ahead.burnt, ahead.lapsed, ahead.depletes_at
        lapsing = _less_the_burn(lapsing, pool_lots, ahead.lapses)
    else:
        burnt = arithmetic.accrual(rate=rate, start=org.metered_since, end=at, balance=pool)
        lapsed = 0
        depletes_at = arithmetic.depletion_instant(rate=rate, since=org.metered_since, balance=pool)
    # Balances sum to zero, so the wallets hold what the other accounts do not.
    in_wallets = -sum(accounts.values())
    return BalanceView(
        at=at,
        available=pool - burnt - lapsed,
        allocated=in_wallets,
        purchased=-accounts[AccountKind.PURCHASES],
        used=accounts[AccountKind.USAGE],
        metered=accounts[AccountKind.METERED] + burnt,
        burn_rate_per_year=rate,
        burn_rate_per_day=arithmetic.daily_rate(rate),
        depletes_at=depletes_at,
        expired=accounts[AccountKind.EXPIRED] + lapsed,
        expiring=tuple(lapsing)[:EXPIRING_LISTED],
    )


def _less_the_burn(
    lapsing: Sequence[ExpiringView],
    pool_lots: Sequence[PoolLot],
    lapses: Sequence[tuple[datetime, int]],
) -> tuple[ExpiringView, ...]:
    """What expires at each instant, the pool's part as it will be then: what the pool holds
    of those lots now, less what the burn takes of them first (domain/lots.py). An instant
    at which nothing is left to lapse is left out."""
    projected = dict(lapses)
    views = []
    for view in lapsing:
        in_pool_now = sum(lot.amount for lot in pool_lots if lot.expires_at == view.at)
        amount = view.amount - in_pool_now + projected.get(view.at, 0)
        if amount > 0:
            views.append(ExpiringView(view.at, amount))
    return tuple(views)


def org_view(uow: UnitOfWork, org: Org, *, summed_usage: bool = True) -> OrgView:
    """Return the org as callers see it now; without `summed_usage`, its `usage` is left empty
    (summing it reads every member's totals)."""
    # Members' totals of one metric may add up past 2^63: summed exactly (see totals.py).
    usage = (
        {
            metric: combine(high, low)
            for metric, high, low in uow.session.execute(
                select(UsageTotal.metric, *exact_sum(UsageTotal.total))
                .where(UsageTotal.org_id == org.id)
                .group_by(UsageTotal.metric)
            ).tuples()
        }
        if summed_usage
        else {}
    )
    balance = balance_view(uow, org, uow.now)
    own = OwnFigures(balance.available, balance.allocated, balance.used, balance.metered, usage)
    return OrgView(
        id=org.id,
        name=org.name,
        paused=org.paused,
        invite_code=org.invite_code,
        settings=settings_of(org),
        balance=balance,
        usage=usage,
        created_at=org.created_at,
        parent_id=org.parent_id,
        rollup=rollup_of(uow, org, own, summed_usage=summed_usage),
    )


def member_views(uow: UnitOfWork, org: Org, members: Sequence[Member]) -> list[MemberView]:
    """Return the views of several members of one org, in the order given."""
    if not members:
        return []
    ids = [member.id for member in members]
    session = uow.session
    people: dict[str, tuple[str, str, int, int]] = {}  # e-mail, name, balance, held
    usage: dict[str, dict[str, int]] = defaultdict(dict)
    groups: dict[str, list[str]] = defaultdict(list)
    # Holds past their expiry count as released even before a write releases them. Their sum
    # cannot overflow: pending holds add up to the wallet's `held`, at most its balance.
    held_now = (
        select(func.coalesce(func.sum(Hold.amount), 0))
        .where(
            Hold.org_id == Member.org_id,
            Hold.member_id == Member.id,
            Hold.status == HoldStatus.PENDING,
            Hold.expires_at > uow.now,
        )
        .correlate(Member)
        .scalar_subquery()
    )
    for start in range(0, len(ids), CHUNK):
        part = ids[start : start + CHUNK]
        rows = session.execute(
            select(Member.id, User.email, User.name, Account.balance, held_now)
            .join(User, User.id == Member.user_id)
            .join(
                Account,
                (Account.org_id == Member.org_id)
                & (Account.id == literal(WALLET_PREFIX).concat(Member.id)),
            )
            .where(Member.org_id == org.id, among(session, Member.id, part))
        ).tuples()
        people.update((member_id, (*rest[:3], int(rest[3]))) for member_id, *rest in rows)
        # Usage totals and groups in one round trip: a group is a row with no total.
        totals = select(UsageTotal.member_id, UsageTotal.metric, UsageTotal.total).where(
            UsageTotal.org_id == org.id, among(session, UsageTotal.member_id, part)
        )
        in_groups = select(
            GroupMember.member_id, GroupMember.group_id, null().cast(BigInteger)
        ).where(GroupMember.org_id == org.id, among(session, GroupMember.member_id, part))
        # Sorted here, not in SQL: an ORDER BY over the union made SQLite read every usage
        # total and group row of the org (200 ms at 100,000 members) instead of these members'.
        figures = sorted(session.execute(union_all(totals, in_groups)).tuples(), key=lambda r: r[1])
        for member_id, name, total in figures:
            if total is None:
                groups[member_id].append(name)
            else:
                usage[member_id][name] = total
    meters_licensed = org.rate_licensed > 0
    pool_available = metering.pool_available(uow, org, uow.now) if meters_licensed else 0
    lapsing = members_expiring(uow, org, ids, uow.now)
    views = []
    for member in members:
        email, name, balance, held = people[member.id]
        access, reason = arithmetic.seat_access(
            removed=member.status == MemberStatus.REMOVED,
            seat=Seat(member.seat),
            paused=org.paused,
            meters_licensed=meters_licensed,
            pool_available=pool_available,
        )
        views.append(
            MemberView(
                id=member.id,
                org_id=org.id,
                user_id=member.user_id,
                email=email,
                name=name,
                role=Role(member.role),
                seat=Seat(member.seat),
                status=MemberStatus(member.status),
                credits_available=balance - held,
                credits_held=held,
                credits_balance=balance,
                credits_allocated=member.allocated_total,
                credits_used=member.used_total,
                auto_allocated=member.auto_allocated_total,
                auto_allocated_this_period=received_this_period(
                    org.auto_period, member.auto_period_allocated, member.auto_allocated_total
                ),
                period_ends_at=org.period_ends_at,
                usage=usage[member.id],
                groups=groups[member.id],
                access=access,
                access_reason=reason,
                joined_at=member.joined_at,
                removed_at=member.removed_at,
                credits_expiring=lapsing[member.id],
            )
        )
    return views


def charged_view(
    org_id: str,
    person: Any,
    figures: Any,
    *,
    balance: int,
    held: int,
    used: int,
    usage: dict[str, int],
    groups: list[str],
    access: tuple[bool, str],
    period: tuple[str | None, datetime | None],
    lapsing: Sequence[ExpiringView] = (),
) -> MemberView:
    """The view of a member a charge has just changed, from rows read on the way: `person`
    (id, user_id, email, name, joined_at), `figures` (role, seat, status, allocated_total,
    auto_allocated_total, auto_period_allocated, removed_at), the org's `period`
    (auto_period, period_ends_at) and what of its wallet expires when (`lapsing`)."""
    return MemberView(
        id=person.id,
        org_id=org_id,
        user_id=person.user_id,
        email=person.email,
        name=person.name,
        role=Role(figures.role),
        seat=Seat(figures.seat),
        status=MemberStatus(figures.status),
        credits_available=balance - held,
        credits_held=held,
        credits_balance=balance,
        credits_allocated=figures.allocated_total,
        credits_used=used,
        auto_allocated=figures.auto_allocated_total,
        auto_allocated_this_period=received_this_period(
            period[0], figures.auto_period_allocated, figures.auto_allocated_total
        ),
        period_ends_at=period[1],
        usage=usage,
        groups=sorted(groups),
        access=access[0],
        access_reason=access[1],
        joined_at=person.joined_at,
        removed_at=figures.removed_at,
        credits_expiring=tuple(lapsing),
    )


def member_view(uow: UnitOfWork, org: Org, member: Member) -> MemberView:
    """Return the view of one member."""
    return member_views(uow, org, [member])[0]


def transfer_view(row: Transfer | dict[str, Any]) -> TransferView:
    """Return the view of a stored or just-recorded transfer."""
    data = (
        row
        if isinstance(row, dict)
        else {column: getattr(row, column) for column in _TRANSFER_FIELDS}
    )
    return TransferView(
        id=data["id"],
        batch_id=data["batch_id"],
        kind=data["kind"],
        debit_account=data["debit_account_id"],
        credit_account=data["credit_account_id"],
        amount=data["amount"],
        member_id=data["member_id"],
        hold_id=data["hold_id"],
        reference=data["reference"],
        metrics=data["metrics"],
        actor=data["actor"],
        created_at=data["created_at"],
        lots=tuple(
            LotShareView(share["lot_id"], int(share["amount"])) for share in data.get("lots") or ()
        ),
    )


_TRANSFER_FIELDS = (
    "id",
    "batch_id",
    "kind",
    "debit_account_id",
    "credit_account_id",
    "amount",
    "member_id",
    "hold_id",
    "reference",
    "metrics",
    "actor",
    "created_at",
    "lots",
)


def hold_view(hold: Hold, now: datetime) -> HoldView:
    """Return the view of a hold; a pending hold past its expiry shows as expired."""
    status = HoldStatus(hold.status)
    if status is HoldStatus.PENDING and hold.expires_at <= now:
        status = HoldStatus.EXPIRED
    return HoldView(
        id=hold.id,
        member_id=hold.member_id,
        amount=hold.amount,
        status=status,
        captured=hold.captured,
        expires_at=hold.expires_at,
        reference=hold.reference,
        created_at=hold.created_at,
    )
