"""The fast path of a usage charge: a handful of statements built once, no ORM objects.

A vendor's product charges on every unit of work, so this is the hottest write there is. When
the member's wallet can pay, a charge is exactly:

1. one read of the org, the member, its person and the pool's posted balance;
2. the conditional debit of the wallet (`balance - held >= amount`), returning what is left;
3. the transfer's row;
4. the member's running total of credits used (within its limit), returning the rest of its
   figures;
5. the member's metric totals, one upsert each when the charge carries metrics;
6. one read of the member's metric totals and groups, for the answer;
7. the credit of the org's usage account, last (every charge of the org touches that row, so
   its lock is held from here to the commit only).

Each is a Core statement made once at import and bound to new values on every charge, so
SQLAlchemy compiles nothing and builds no ORM objects: the ORM's bulk UPDATE alone costs about
six times as much CPU as a prepared Core one. The SQL is the same on SQLite and PostgreSQL.

When the wallet cannot pay, nothing has changed yet: `try_charge` returns None and usage.py
takes the slow path in the same transaction (expired holds, automatic top-up), which checks and
refuses with the same errors. Statements 4, 5 and 7 refuse a total past its limit by raising,
and the whole transaction rolls back.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import (
    BigInteger,
    Connection,
    func,
    insert,
    null,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy import bindparam as param

from creditpool.domain import metering as arithmetic
from creditpool.domain.errors import MemberRemoved, NotFound, OrgPaused
from creditpool.domain.model import (
    AccountKind,
    HoldStatus,
    MemberStatus,
    Seat,
    TransferKind,
)
from creditpool.metrics import note_transfers
from creditpool.services import event_bodies, events, lot_views, lots
from creditpool.services.ledger import WALLET_PREFIX, Posting
from creditpool.services.lookups import load_org, settlement_due
from creditpool.services.metering import MeteredOrg, available
from creditpool.services.totals import MAX_TOTAL, limit_exceeded
from creditpool.services.views import UsageResult, charged_view, transfer_view
from creditpool.storage.ids import new_id
from creditpool.storage.schema import (
    Account,
    GroupMember,
    Hold,
    Member,
    Org,
    Transfer,
    User,
    table_of,
)
from creditpool.storage.schema import UsageTotal as UsageTotalRow
from creditpool.storage.unit_of_work import UnitOfWork

_orgs, _members, _users = table_of(Org), table_of(Member), table_of(User)
_accounts, _transfers, _holds = table_of(Account), table_of(Transfer), table_of(Hold)
_totals, _in_groups = table_of(UsageTotalRow), table_of(GroupMember)
_pool = _accounts.alias("pool")

_CHARGEABLE = (
    select(
        _orgs.c.paused,
        _orgs.c.ancestor_paused,  # for the burn (services/metering.py)
        _orgs.c.rate_licensed,
        _orgs.c.rate_unlicensed,
        _orgs.c.rate_external,
        _orgs.c.licensed_seats,
        _orgs.c.unlicensed_seats,
        _orgs.c.external_seats,
        _orgs.c.metered_since,
        _orgs.c.webhook_events,
        _orgs.c.auto_period,
        _orgs.c.period_ends_at,
        _orgs.c.sole_lot_id,
        _orgs.c.next_expiry_at,
        _members.c.id,
        _members.c.status,
        _members.c.user_id,
        _members.c.joined_at,
        _users.c.email,
        _users.c.name,
        _pool.c.balance.label("pool_balance"),
    )
    .select_from(_orgs)
    .join(_pool, (_pool.c.org_id == _orgs.c.id) & (_pool.c.id == AccountKind.POOL))
    .outerjoin(_members, (_members.c.org_id == _orgs.c.id) & (_members.c.id == param("member")))
    .outerjoin(_users, _users.c.id == _members.c.user_id)
    .where(_orgs.c.id == param("org"))
)

_ADD_USED = (
    update(_members)
    .where(
        _members.c.org_id == param("org"),
        _members.c.id == param("member"),
        _members.c.used_total <= MAX_TOTAL - param("amount"),
    )
    .values(used_total=_members.c.used_total + param("amount"))
    # The member as this update leaves it, locked until the commit: a seat or role changed
    # since the first read shows as it now is, as in the slow path.
    .returning(
        _members.c.used_total,
        _members.c.allocated_total,
        _members.c.auto_allocated_total,
        _members.c.auto_period_allocated,
        _members.c.role,
        _members.c.seat,
        _members.c.status,
        _members.c.removed_at,
    )
)

# A member's metric totals and groups in one round trip: a group is a row with no total.
_FIGURES = union_all(
    select(_totals.c.metric, _totals.c.total).where(
        _totals.c.org_id == param("org"), _totals.c.member_id == param("member")
    ),
    select(_in_groups.c.group_id, null().cast(BigInteger)).where(
        _in_groups.c.org_id == param("org"), _in_groups.c.member_id == param("member")
    ),
)

# What the wallet's open holds come to now: one past its expiry no longer holds anything.
_HELD_NOW = select(func.coalesce(func.sum(_holds.c.amount), 0)).where(
    _holds.c.org_id == param("org"),
    _holds.c.member_id == param("member"),
    _holds.c.status == HoldStatus.PENDING,
    _holds.c.expires_at > param("now"),
)

_INSERT_TRANSFER = insert(_transfers)


def try_charge(
    uow: UnitOfWork,
    org_id: str,
    member_id: str,
    amount: int,
    metrics: dict[str, int] | None,
    reference: str | None,
    actor: str,
) -> UsageResult | None:
    """Charge the member's wallet if it can pay, inside the open transaction; None, with
    nothing changed, if it cannot (the caller takes the slow path)."""
    connection = uow.session.connection()
    keys = {"org": org_id, "member": member_id}
    found = connection.execute(_CHARGEABLE, keys).one_or_none()
    if found is None:
        raise NotFound(f"no org {org_id}")
    if settlement_due(found, uow.now):
        # A period boundary or a lot's expiry has passed: settle it (under the org's lock,
        # taken first of all) before charging, then read the org as it left it.
        load_org(uow, org_id, lock=True)
        found = connection.execute(_CHARGEABLE, keys).one()
    if found.paused:
        raise OrgPaused("the org is paused: usage and holds are refused until it resumes")
    if found.status is None:
        raise NotFound(f"no member {member_id} in this org")
    if found.status == MemberStatus.REMOVED:
        raise MemberRemoved("this member was removed from the org")
    wallet_id = f"{WALLET_PREFIX}{member_id}"
    wallet = Posting.charge_wallet(connection, org_id, wallet_id, amount)
    if wallet is None:
        return None
    shares, holdings = lots.charge(
        connection, org_id, wallet_id, amount, found.sole_lot_id, uow.now
    )
    transfer = {
        "org_id": org_id,
        "id": new_id("trf"),
        "batch_id": new_id("bat"),
        "kind": str(TransferKind.USAGE),
        "debit_account_id": wallet_id,
        "credit_account_id": str(AccountKind.USAGE),
        "amount": amount,
        "member_id": member_id,
        "hold_id": None,
        "reference": reference,
        "metrics": metrics,
        "actor": actor,
        "created_at": uow.now,
        "lots": lots.shares_json(shares),
    }
    connection.execute(_INSERT_TRANSFER, transfer)
    note_transfers(uow.session, (str(transfer["kind"]),))
    figures = connection.execute(_ADD_USED, keys | {"amount": amount}).one_or_none()
    if figures is None:
        raise limit_exceeded("the member's total of credits used")
    if metrics:
        add_metrics(connection, org_id, member_id, metrics)
    usage: dict[str, int] = {}
    groups: list[str] = []
    for name, total in connection.execute(_FIGURES, keys):
        if total is None:
            groups.append(name)
        else:
            usage[name] = total
    held = wallet.held
    if held:
        held = connection.execute(_HELD_NOW, keys | {"now": uow.now}).scalar_one()
    Posting.credit_usage(connection, org_id, amount)
    org = cast(MeteredOrg, found)
    meters_licensed = found.rate_licensed > 0
    access, reason = arithmetic.seat_access(
        removed=figures.status == MemberStatus.REMOVED,
        seat=Seat(figures.seat),
        paused=False,
        meters_licensed=meters_licensed,
        pool_available=available(org, found.pool_balance, uow.now) if meters_licensed else 0,
    )
    member = charged_view(
        org_id,
        found,
        figures,
        balance=wallet.balance,
        held=held,
        used=figures.used_total,
        usage=usage,
        groups=groups,
        access=(access, reason),
        period=(found.auto_period, found.period_ends_at),
        # No query unless some lot of the org expires, nor when the charge read the wallet's
        # lots to choose from them.
        lapsing=lot_views.member_expiring(
            uow, lot_views.OrgExpiry(org_id, found.next_expiry_at), member_id, uow.now
        )
        if holdings is None
        else lot_views.expiring_in(holdings, uow.now),
    )
    result = UsageResult(transfer_view(transfer), member, 0)
    if found.webhook_events:  # no query at all unless some endpoint of the org wants events
        events.emit(
            uow,
            events.OrgRef(org_id, found.webhook_events),
            events.USAGE_RECORDED,
            lambda: event_bodies.usage_json(result),
        )
    return result


# The upsert of one metric total: added to, unless it would pass its limit (then no row comes
# back). A metric is at most 2^53 (check_metrics), so the difference is in range. Written as SQL
# because SQLAlchemy compiles its ON CONFLICT constructs again on every execution; both engines
# read this same text (SQLite since 3.35).
_ADD_METRIC = text(
    "INSERT INTO usage_totals (org_id, member_id, metric, total) "
    "VALUES (:org, :member, :metric, :value) "
    "ON CONFLICT (org_id, member_id, metric) "
    "DO UPDATE SET total = usage_totals.total + excluded.total "
    "WHERE usage_totals.total <= :max - excluded.total "
    "RETURNING metric"
)


def add_metrics(
    connection: Connection, org_id: str, member_id: str, metrics: dict[str, int]
) -> None:
    """Add a charge's metrics to the member's totals, one upsert each (a charge carries a few);
    LimitExceeded (and the transaction rolls back) if any total would pass its limit."""
    for name, value in sorted(metrics.items()):
        keys = {"org": org_id, "member": member_id, "metric": name, "value": value}
        keys["max"] = MAX_TOTAL
        if connection.execute(_ADD_METRIC, keys).first() is None:
            raise limit_exceeded("the member's total of a usage metric")
