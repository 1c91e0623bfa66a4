"""Many usage charges of one org in one transaction, with a few set-based statements.

A batch of usage events, and single charges gathered while the org's previous ones commit
(api/gathering.py), are charged here. The outcome is exactly that of charging them one after
the other, in the order given, each all or nothing: a charge refused (unknown or removed
member, too few credits, a total past its limit) changes nothing and does not stop the others.

The statements, whatever the number of charges:

1. one read of the org and its pool's balance;
2. under automatic allocation only, the org's lock (a top-up moves pool credits);
3. the members' expired holds, locked and released (services/wallets.py);
4. the members' wallets, locked in id order, with what each holds;
5. the members, locked in id order, with their persons;
6. their metric totals and groups, in one read;
7. the wallets' debits and the members' totals of credits used, one UPDATE each (a CASE
   gives each row its amount); the transfers, one INSERT of many rows (COPY from 200 on
   PostgreSQL); the metric totals, one upsert of many rows;
8. the credit of the org's usage account, last (see the lock order in ledger.py).

Everything is decided in Python between the reads and the writes, under the rows' locks (the
order of ledger.py), so the writes cannot fail a condition. The one exception: a wallet that
cannot pay in an org with automatic allocation takes the slow path of services/usage.py, one
charge at a time (each in a savepoint), for that member's charges from there on.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    BindParameter,
    Connection,
    TextClause,
    bindparam,
    case,
    literal,
    null,
    select,
    text,
    union_all,
    update,
)

from creditpool.domain import metering as arithmetic
from creditpool.domain.errors import CreditpoolError, MemberRemoved, NotFound, OrgPaused
from creditpool.domain.model import AccountKind, MemberStatus, Seat, TransferKind
from creditpool.domain.policies import AutoAllocation
from creditpool.metrics import note_transfers
from creditpool.services import event_bodies, events, lot_views, lots
from creditpool.services.ledger import WALLET_PREFIX, Posting, chunks
from creditpool.services.lookups import load_org, settlement_due
from creditpool.services.metering import MeteredOrg, available
from creditpool.services.totals import MAX_TOTAL, limit_exceeded
from creditpool.services.usage import apply_usage
from creditpool.services.views import (
    MemberView,
    TransferView,
    UsageResult,
    charged_view,
    transfer_view,
)
from creditpool.services.wallets import lock_expired_holds, release_locked_holds
from creditpool.storage.bulk import insert_rows
from creditpool.storage.ids import new_id
from creditpool.storage.schema import (
    Account,
    GroupMember,
    Member,
    Org,
    Transfer,
    UsageTotal,
    User,
    table_of,
)
from creditpool.storage.unit_of_work import UnitOfWork

_orgs, _members, _users = table_of(Org), table_of(Member), table_of(User)
_accounts, _transfers = table_of(Account), table_of(Transfer)
_totals, _in_groups = table_of(UsageTotal), table_of(GroupMember)
_pool = _accounts.alias("pool")


@dataclass(frozen=True)
class Charge:
    """One charge, its arguments already checked (services/usage.py's checks)."""

    member_id: str
    amount: int
    metrics: dict[str, int] | None
    reference: str | None
    actor: str


@dataclass(frozen=True)
class Charged:
    """A charge made: its transfer and, when asked for, the member as the charge left it."""

    transfer: TransferView
    member: MemberView | None = None
    auto_allocated: int = 0


Outcome = Charged | CreditpoolError


# The org's figures the charges need, with its pool's balance (for the members' access).
_ORG = (
    select(
        *(_orgs.c[name] for name in MeteredOrg.__annotations__),
        _orgs.c.auto_enabled,
        _orgs.c.webhook_events,
        _orgs.c.auto_period,
        _orgs.c.period_ends_at,
        _orgs.c.next_expiry_at,
        _pool.c.balance.label("pool_balance"),
    )
    .join(_pool, (_pool.c.org_id == _orgs.c.id) & (_pool.c.id == AccountKind.POOL))
    .where(_orgs.c.id == bindparam("org"))
)
_IDS: BindParameter[Any] = bindparam("ids", expanding=True)
# Locked in id order, wallets before members (ledger.py's lock order).
_WALLETS = (
    select(_accounts.c.member_id, _accounts.c.balance, _accounts.c.held)
    .where(_accounts.c.org_id == bindparam("org"), _accounts.c.id.in_(_IDS))
    .order_by(_accounts.c.id)
    .with_for_update(key_share=True)
)
_MEMBERS = (
    select(
        _members.c.id,
        _members.c.user_id,
        _members.c.role,
        _members.c.seat,
        _members.c.status,
        _members.c.used_total,
        _members.c.allocated_total,
        _members.c.auto_allocated_total,
        _members.c.auto_period_allocated,
        _members.c.joined_at,
        _members.c.removed_at,
        _users.c.email,
        _users.c.name,
    )
    .join(_users, _users.c.id == _members.c.user_id)
    .where(_members.c.org_id == bindparam("org"), _members.c.id.in_(_IDS))
    .order_by(_members.c.id)
    .with_for_update(key_share=True, of=_members)
)
# The members' metric totals and groups in one round trip: a group is a row with no total.
_FIGURES = union_all(
    select(_totals.c.member_id, _totals.c.metric, _totals.c.total).where(
        _totals.c.org_id == bindparam("org"), _totals.c.member_id.in_(_IDS)
    ),
    select(_in_groups.c.member_id, _in_groups.c.group_id, null().cast(BigInteger)).where(
        _in_groups.c.org_id == bindparam("org"), _in_groups.c.member_id.in_(_IDS)
    ),
)
_METRIC_TOTALS = select(_totals.c.member_id, _totals.c.metric, _totals.c.total).where(
    _totals.c.org_id == bindparam("org"), _totals.c.member_id.in_(_IDS)
)


def _add_metrics(
    connection: Connection, org_id: str, added: list[tuple[tuple[str, str], int]]
) -> None:
    """Add to the members' metric totals, a few hundred in one statement (every total was
    checked against its limit under the members' locks). Each (member, metric) comes once:
    one statement cannot update a row twice."""
    for start in range(0, len(added), _METRICS_PER_STATEMENT):
        part = added[start : start + _METRICS_PER_STATEMENT]
        arguments: dict[str, Any] = {"org": org_id}
        for number, ((member_id, metric), value) in enumerate(part):
            arguments |= {f"m{number}": member_id, f"n{number}": metric, f"v{number}": value}
        connection.execute(_add_metrics_statement(len(part)), arguments)


_METRICS_PER_STATEMENT = 200


@cache
def _add_metrics_statement(count: int) -> TextClause:
    """The upsert of `count` metric totals: SQL text, one per count (SQLAlchemy compiles its
    ON CONFLICT construct again on every execution); both engines read it."""
    values = ", ".join(f"(:org, :m{i}, :n{i}, :v{i})" for i in range(count))
    return text(
        f"INSERT INTO usage_totals (org_id, member_id, metric, total) VALUES {values} "  # noqa: S608
        "ON CONFLICT (org_id, member_id, metric) "
        "DO UPDATE SET total = usage_totals.total + excluded.total"
    )


# Refused the same way as one charge whose wallet is short and which no top-up may fill.
_NO_TOP_UP = AutoAllocation(enabled=False)


@dataclass
class _Member:
    """A member as the charges decided so far leave it."""

    row: Any
    balance: int = 0
    held: int = 0
    used: int = 0
    usage: dict[str, int] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)


def charge_many(
    uow: UnitOfWork, org_id: str, charges: Sequence[Charge], *, with_members: bool
) -> list[Outcome]:
    """Charge each in order inside the open transaction; return each one's outcome.

    `with_members` asks for each charged member's view after its charge (single requests
    answer with it; a batch does not).
    """
    if not charges:
        return []
    connection = uow.session.connection()
    org = connection.execute(_ORG, {"org": org_id}).one_or_none()
    if org is None:
        return [NotFound(f"no org {org_id}")] * len(charges)
    if settlement_due(org, uow.now):
        # A period boundary or a lot's expiry has passed: settle it under the org's lock,
        # taken first of all, then charge with the org as that left it.
        load_org(uow, org_id, lock=True)
        org = connection.execute(_ORG, {"org": org_id}).one()
    if org.paused:
        paused = OrgPaused("the org is paused: usage and holds are refused until it resumes")
        return [paused] * len(charges)
    if org.auto_enabled:
        # A top-up moves pool credits: the org's lock comes first of all.
        load_org(uow, org_id, lock=True)
    named = sorted({charge.member_id for charge in charges})
    members = _lock_members(uow, org_id, named)
    # A usage.recorded event carries the member as the charge left it, as a single charge's
    # answer does: with a subscriber, a batch reads the members' figures too.
    emitting = events.OrgRef(org_id, org.webhook_events)
    with_members = with_members or events.subscribed(emitting, events.USAGE_RECORDED)
    if with_members:
        _read_figures(uow, org_id, members, _FIGURES)
    elif any(charge.metrics for charge in charges):
        _read_figures(uow, org_id, members, _METRIC_TOTALS)

    outcomes: list[Outcome | None] = [None] * len(charges)
    rows: list[dict[str, Any]] = []
    made: list[tuple[int, dict[str, Any], MemberView | None]] = []
    debits: dict[str, int] = defaultdict(int)
    added: dict[str, int] = defaultdict(int)
    metric_added: dict[tuple[str, str], int] = defaultdict(int)
    slow: list[int] = []  # charges for the slow path, in order
    slow_members: set[str] = set()
    access = _Access(org, uow)
    for index, charge in enumerate(charges):
        member = members.get(charge.member_id)
        if member is None or member.row.status == MemberStatus.REMOVED:
            outcomes[index] = _not_chargeable(member, charge)
            continue
        if charge.member_id in slow_members or member.balance - member.held < charge.amount:
            if not org.auto_enabled:
                outcomes[index] = _short(member, charge.amount)
                continue
            # Automatic allocation may top the wallet up: this member's charges go one by one.
            slow_members.add(charge.member_id)
            slow.append(index)
            continue
        past = _past_limit(member, charge)
        if past is not None:
            outcomes[index] = past
            continue
        member.balance -= charge.amount
        member.used += charge.amount
        debits[charge.member_id] += charge.amount
        added[charge.member_id] += charge.amount
        for name, value in (charge.metrics or {}).items():
            member.usage[name] = member.usage.get(name, 0) + value
            metric_added[(charge.member_id, name)] += value
        row = _transfer(org_id, charge, uow)
        rows.append(row)
        view = access.view_of(org_id, member) if with_members else None
        made.append((index, row, view))

    if rows:
        Posting.debit_wallets(connection, org_id, debits)
        lots.trace(uow.session, org_id, rows, uow.now)  # which lots pay, in spending order
        # What of each wallet expires when, as each charge leaves it (no query unless some
        # lot of the org expires).
        shown = [(row, view) for _, row, view in made if view is not None]
        lapsing = iter(
            lot_views.expiring_after_each(
                uow,
                lot_views.OrgExpiry(org_id, org.next_expiry_at),
                [(view.id, lots.shares_of(row["lots"])) for row, view in shown],
                uow.now,
            )
        )
        for index, row, view in made:
            if view is not None:
                view = replace(view, credits_expiring=next(lapsing))
            outcomes[index] = Charged(transfer_view(row), view)
        insert_rows(connection, _transfers, rows)
        note_transfers(uow.session, (row["kind"] for row in rows))
        for part in chunks(sorted(added)):
            each = {member_id: literal(added[member_id], BigInteger) for member_id in part}
            amounts = case(each, value=_members.c.id)
            connection.execute(
                update(_members)
                .where(_members.c.org_id == org_id, _members.c.id.in_(part))
                .values(used_total=_members.c.used_total + amounts)
            )
        _add_metrics(connection, org_id, sorted(metric_added.items()))
        if events.subscribed(emitting, events.USAGE_RECORDED):
            charged = [outcome for outcome in outcomes if isinstance(outcome, Charged)]
            events.emit_many(
                uow,
                emitting,
                events.USAGE_RECORDED,
                [
                    {
                        "transfer": event_bodies.transfer_json(outcome.transfer),
                        "member": event_bodies.member_json(outcome.member),
                    }
                    for outcome in charged
                    if outcome.member is not None
                ],
            )
    for index in slow:
        outcomes[index] = _charge_slowly(uow, org_id, charges[index], with_members)
    if rows:
        # Every charge of the org credits this row: touched last, its lock is held the least.
        Posting.credit_usage(connection, org_id, sum(row["amount"] for row in rows))
    assert all(outcome is not None for outcome in outcomes)
    return [outcome for outcome in outcomes if outcome is not None]


def _lock_members(uow: UnitOfWork, org_id: str, named: list[str]) -> dict[str, _Member]:
    """Release the members' expired holds, then lock their wallets and rows (in that order,
    each in id order) and read what the charges are decided on."""
    # Holds, then every wallet in id order, and only then do the wallets' held amounts change.
    expired = lock_expired_holds(uow, org_id, named)
    connection = uow.session.connection()
    wallets: dict[str, tuple[int, int]] = {}
    for part in chunks(named):
        wallet_ids = [f"{WALLET_PREFIX}{member_id}" for member_id in part]
        for member_id, balance, held in connection.execute(
            _WALLETS, {"org": org_id, "ids": wallet_ids}
        ):
            wallets[member_id] = (balance, held - expired.freed.get(member_id, 0))
    # What the holds let go of lots that have expired lapses at once: the wallet loses it.
    for member_id, gone in release_locked_holds(uow, org_id, expired).items():
        balance, held = wallets[member_id]
        wallets[member_id] = (balance - gone, held)
    members: dict[str, _Member] = {}
    for part in chunks(named):
        for row in connection.execute(_MEMBERS, {"org": org_id, "ids": list(part)}):
            balance, held = wallets[row.id]
            members[row.id] = _Member(row, balance, held, row.used_total)
    return members


def _read_figures(uow: UnitOfWork, org_id: str, members: dict[str, _Member], query: Any) -> None:
    """Read the members' metric totals (and, with _FIGURES, their groups: rows with no
    total). The members are locked, so no other write changes these until the commit."""
    connection = uow.session.connection()
    for part in chunks(sorted(members)):
        for member_id, name, total in connection.execute(query, {"org": org_id, "ids": list(part)}):
            if total is None:
                members[member_id].groups.append(name)
            else:
                members[member_id].usage[name] = total


def _not_chargeable(member: _Member | None, charge: Charge) -> CreditpoolError:
    """The refusal of a charge to a member unknown to the org or removed from it."""
    if member is None:
        return NotFound(f"no member {charge.member_id} in this org")
    return MemberRemoved("this member was removed from the org")


def _past_limit(member: _Member, charge: Charge) -> CreditpoolError | None:
    """The refusal of a charge that would take one of the member's totals past its limit."""
    if member.used > MAX_TOTAL - charge.amount:
        return limit_exceeded("the member's total of credits used")
    for name, value in (charge.metrics or {}).items():
        if member.usage.get(name, 0) > MAX_TOTAL - value:
            return limit_exceeded("the member's total of a usage metric")
    return None


def _short(member: _Member, amount: int) -> CreditpoolError:
    """The refusal of a charge the wallet cannot pay, when no top-up may fill it."""
    try:
        _NO_TOP_UP.top_up(available=member.balance - member.held, amount=amount, auto_allocated=0)
    except CreditpoolError as refusal:
        return refusal
    raise AssertionError("a short wallet is always refused")  # pragma: no cover


def _transfer(org_id: str, charge: Charge, uow: UnitOfWork) -> dict[str, Any]:
    """The usage transfer of one charge: a batch of its own, as when charged alone."""
    return {
        "org_id": org_id,
        "id": new_id("trf"),
        "batch_id": new_id("bat"),
        "kind": str(TransferKind.USAGE),
        "debit_account_id": f"{WALLET_PREFIX}{charge.member_id}",
        "credit_account_id": str(AccountKind.USAGE),
        "amount": charge.amount,
        "member_id": charge.member_id,
        "hold_id": None,
        "reference": charge.reference,
        "metrics": charge.metrics,
        "actor": charge.actor,
        "created_at": uow.now,
    }


class _Access:
    """Members' views, with the access their seats have while the pool pays as it does now."""

    def __init__(self, org: Any, uow: UnitOfWork) -> None:
        self.meters_licensed = org.rate_licensed > 0
        self.period = (org.auto_period, org.period_ends_at)
        self.pool_available = (
            available(org, org.pool_balance, uow.now) if self.meters_licensed else 0
        )

    def view_of(self, org_id: str, member: _Member) -> MemberView:
        row = member.row
        access, reason = arithmetic.seat_access(
            removed=False,
            seat=Seat(row.seat),
            paused=False,
            meters_licensed=self.meters_licensed,
            pool_available=self.pool_available,
        )
        return charged_view(
            org_id,
            row,
            row,
            balance=member.balance,
            held=member.held,
            used=member.used,
            usage=dict(member.usage),
            groups=member.groups,
            access=(access, reason),
            period=self.period,
        )


def _charge_slowly(uow: UnitOfWork, org_id: str, charge: Charge, with_members: bool) -> Outcome:
    """One charge by the slow path (a top-up may be needed), in a savepoint of its own."""
    try:
        with uow.session.begin_nested():
            result: UsageResult = apply_usage(
                uow,
                org_id,
                charge.member_id,
                charge.amount,
                charge.metrics,
                charge.reference,
                charge.actor,
            )
    except CreditpoolError as refusal:
        return refusal
    member = result.member if with_members else None
    return Charged(result.transfer, member, result.auto_allocated)
