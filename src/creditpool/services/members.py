"""Members: joining, seats and roles, removal and return.

A change of membership or seat moves the burn rate at once: each one locks the org row and,
when the rate or the pool's balance moves, settles metering first. Removing a member keeps its
row and history; its open holds are voided and its wallet goes back to the pool when the org
is returnable (else it stays on the removed member). A removed member who comes back finds the
same id, history, groups and credits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select

from creditpool.domain.errors import (
    AlreadyMember,
    InvalidInput,
    MemberRemoved,
    NotFound,
    OwnerRequired,
)
from creditpool.domain.model import AccountKind, HoldStatus, MemberStatus, Role, Seat, TransferKind
from creditpool.services import alerts, event_bodies, events, expiry, ledger, metering, periods
from creditpool.services.auth import check_may_grant
from creditpool.services.ledger import bulk_update, chunks, wallet_account
from creditpool.services.lookups import load_group, load_member, load_org, settlement_due
from creditpool.services.transactions import run_write
from creditpool.services.views import MemberView, member_view, member_views
from creditpool.storage.ids import new_id
from creditpool.storage.schema import GroupMember, Hold, Member, Org, User
from creditpool.storage.unit_of_work import UnitOfWork


def add_member(
    uow: UnitOfWork,
    org_id: str,
    *,
    user_id: str,
    role: Role = Role.MEMBER,
    seat: Seat = Seat.LICENSED,
    actor: str,
    idempotency_key: str | None = None,
) -> MemberView:
    """Make a user a member, or bring a removed member back with its history intact."""
    if role is Role.OWNER:
        raise InvalidInput("an org has one owner; hand it over by changing a member's role")

    def apply() -> MemberView:
        org = load_org(uow, org_id, lock=True)
        return member_view(uow, org, join(uow, org, user_id=user_id, role=role, seat=seat))

    return run_write(
        uow,
        apply,
        org_id=org_id,
        actor=actor,
        key=idempotency_key,
        operation="add_member",
        arguments={"user": user_id, "role": role, "seat": seat},
        result_type=MemberView,
    )


def restore_member(
    uow: UnitOfWork,
    org_id: str,
    member_id: str,
    *,
    actor: str,
    caller_role: Role | None = None,
    idempotency_key: str | None = None,
) -> MemberView:
    """Bring a removed member back as it was: its role, its seat (so its burn), its history.

    `caller_role` is the caller's role in the org (None: an operator): only the owner or an
    operator brings a manager back, as only they make managers (Forbidden otherwise).
    """

    def apply() -> MemberView:
        org = load_org(uow, org_id, lock=True)
        member = load_member(uow, org_id, member_id)
        check_may_grant(caller_role, Role(member.role), doing="bring back")
        restored = join(
            uow, org, user_id=member.user_id, role=Role(member.role), seat=Seat(member.seat)
        )
        return member_view(uow, org, restored)

    return run_write(
        uow,
        apply,
        org_id=org_id,
        actor=actor,
        key=idempotency_key,
        operation="restore_member",
        arguments={"member": member_id},
        result_type=MemberView,
    )


def join(uow: UnitOfWork, org: Org, *, user_id: str, role: Role, seat: Seat) -> Member:
    """Add or reactivate a membership inside an open transaction; the org row must be locked."""
    if uow.session.get(User, user_id) is None:
        raise NotFound(f"no user {user_id}")
    member = uow.session.scalars(
        select(Member).where(Member.org_id == org.id, Member.user_id == user_id)
    ).one_or_none()
    if member is not None and member.status == MemberStatus.ACTIVE:
        raise AlreadyMember("this user is already a member of the org")
    if metering.moves_rate(org, [(seat, +1)]):
        metering.settle(uow, org, actor=user_id)
    if member is None:
        member = Member(
            org_id=org.id,
            id=new_id("mem"),
            user_id=user_id,
            role=role,
            seat=seat,
            status=MemberStatus.ACTIVE,
            allocated_total=0,
            auto_allocated_total=0,
            used_total=0,
            joined_at=uow.now,
        )
        uow.session.add(member)
        uow.session.flush()
        ledger.open_wallet(uow.session, org.id, member.id)
    else:
        member.status = MemberStatus.ACTIVE
        member.role = role
        member.seat = seat
        member.removed_at = None
        # Back within a period, it counts afresh (services/periods.py): what it received
        # automatically went back to the pool on removal, so nothing of it is left to reclaim,
        # and what it is allotted by hand from now on never is.
        member.auto_period_allocated = 0
        member.period_used_base = member.used_total
    metering.change_seats(org, seat, +1)
    uow.session.flush()
    # Every way in (a link, an invitation, an enrolment, coming back) passes here.
    events.emit(
        uow,
        org,
        events.MEMBER_JOINED,
        lambda: event_bodies.member_json(member_view(uow, org, member)),
    )
    return member


def change_member(
    uow: UnitOfWork,
    org_id: str,
    member_id: str,
    *,
    role: Role | None = None,
    seat: Seat | None = None,
    actor: str,
    caller_role: Role | None = None,
) -> MemberView:
    """Change a member's seat (the burn moves at once) or role (owner hands the org over).

    `caller_role` is the caller's role in the org (None: an operator); a role change needs the
    power to give the new role and to take the old one (Forbidden otherwise).
    """

    def apply() -> MemberView:
        org = load_org(uow, org_id, lock=True)
        member = load_member(uow, org_id, member_id)
        if member.status == MemberStatus.REMOVED:
            raise MemberRemoved("a removed member has no seat or role to change")
        if role is not None and role != member.role:
            check_may_grant(caller_role, Role(member.role), doing="change the role of")
            check_may_grant(caller_role, role, doing="make someone")
            _change_role(uow, org, member, role)
        if seat is not None and seat != member.seat:
            if metering.moves_rate(org, [(Seat(member.seat), -1), (seat, +1)]):
                metering.settle(uow, org, actor=actor)
            metering.change_seats(org, Seat(member.seat), -1)
            metering.change_seats(org, seat, +1)
            member.seat = seat
        uow.session.flush()
        return member_view(uow, org, member)

    return run_write(uow, apply)


def _change_role(uow: UnitOfWork, org: Org, member: Member, role: Role) -> None:
    if member.role == Role.OWNER:
        raise OwnerRequired("the owner cannot step down; make another member owner instead")
    if role is Role.OWNER:
        # There is always exactly one owner: handing over demotes the old one to manager.
        uow.session.execute(
            bulk_update(Member)
            .where(Member.org_id == org.id, Member.role == Role.OWNER)
            .values(role=Role.MANAGER)
        )
    member.role = role


def remove_member(
    uow: UnitOfWork,
    org_id: str,
    member_id: str,
    *,
    actor: str,
    caller_role: Role | None = None,
) -> MemberView:
    """Remove a member, keeping its history; removing a removed member changes nothing.

    `caller_role` is the caller's role in the org (None: an operator): only the owner or an
    operator removes a manager (Forbidden otherwise), as only they bring one back.
    """

    def apply() -> MemberView:
        org = load_org(uow, org_id, lock=True)
        member = load_member(uow, org_id, member_id)
        if member.role == Role.OWNER:
            raise OwnerRequired("the owner cannot be removed; hand the org over first")
        check_may_grant(caller_role, Role(member.role), doing="remove")
        if member.status == MemberStatus.ACTIVE:
            posting = ledger.Posting(uow.session, org.id, actor, uow.now)
            remove_members(uow, org, [member], posting, reference="member removed")
        return member_view(uow, org, member)

    return run_write(uow, apply)


def remove_members(
    uow: UnitOfWork,
    org: Org,
    members: Sequence[Member],
    posting: ledger.Posting,
    *,
    reference: str,
) -> int:
    """Remove active members in bulk; return the credits that went back to the pool.

    The org row must be locked. Open holds are closed, the burn is settled before the seat count
    drops, and wallets are emptied into the pool only when the org is returnable.
    """
    ids = [member.id for member in members]
    session = uow.session
    for part in chunks(ids):
        for status, live in ((HoldStatus.EXPIRED, False), (HoldStatus.VOIDED, True)):
            session.execute(
                bulk_update(Hold)
                .where(
                    Hold.org_id == org.id,
                    Hold.member_id.in_(part),
                    Hold.status == HoldStatus.PENDING,
                    (Hold.expires_at > uow.now) if live else (Hold.expires_at <= uow.now),
                )
                .values(status=status, closed_at=uow.now)
            )
    wallets = [wallet_account(member_id) for member_id in ids]
    posting.release_all(wallets)
    # What the closed holds kept of lots that have expired lapses now, not back to the pool.
    expiry.expire_leftovers(uow, org.id, wallets)
    returns = posting.empty_each(wallets) if org.returnable else []
    # The burn is posted before the pool's balance or the rate moves, and only then.
    if returns or metering.moves_rate(org, [(Seat(member.seat), -1) for member in members]):
        metering.settle(uow, org, actor=posting.actor, posting=posting)
    for account_id, member_id, balance in returns:
        posting.record(
            TransferKind.REVOCATION,
            account_id,
            AccountKind.POOL,
            balance,
            member_id=member_id,
            reference=reference,
        )
    returned = sum(balance for _, _, balance in returns)
    if returned:
        posting.adjust(AccountKind.POOL, returned)
    posting.flush()
    for member in members:
        metering.change_seats(org, Seat(member.seat), -1)
        member.status = MemberStatus.REMOVED
        member.removed_at = uow.now
    session.flush()
    if events.subscribed(org, events.MEMBER_REMOVED):
        removed = member_views(uow, org, members)
        events.emit_many(
            uow, org, events.MEMBER_REMOVED, [event_bodies.member_json(view) for view in removed]
        )
    if returned:
        alerts.check(uow, org)  # the pool rose: a crossing announced may be over
    return returned


def get_member(uow: UnitOfWork, org_id: str, member_id: str) -> MemberView:
    """Return a member of the org, active or removed."""
    with uow:
        org = load_org(uow, org_id)
        return member_view(uow, org, load_member(uow, org_id, member_id))


def list_members(
    uow: UnitOfWork,
    org_id: str,
    *,
    status: MemberStatus | None = MemberStatus.ACTIVE,
    group_id: str | None = None,
    after: str | None = None,
    limit: int = 50,
) -> list[MemberView]:
    """Return members by id: active by default, removed, or all (`status=None`)."""
    with uow:
        org = load_org(uow, org_id)
        query = select(Member).where(Member.org_id == org_id).order_by(Member.id).limit(limit)
        if status is not None:
            query = query.where(Member.status == status)
        if group_id is not None:
            load_group(uow, org_id, group_id)
            query = query.join(
                GroupMember,
                (GroupMember.org_id == Member.org_id) & (GroupMember.member_id == Member.id),
            ).where(GroupMember.group_id == group_id)
        if after is not None:
            query = query.where(Member.id > after)
        return member_views(uow, org, list(uow.session.scalars(query)))


@dataclass(frozen=True)
class MembershipView:
    """One org a user belongs to, and its role there."""

    org_id: str
    org_name: str
    member_id: str
    role: Role


def memberships_of(uow: UnitOfWork, user_id: str) -> list[MembershipView]:
    """Return the user's active memberships, by org name; an org whose period boundary or lot
    expiry has passed is settled first (services/periods.py), so what is read of it next is
    current."""
    with uow:
        rows = uow.session.execute(
            select(Org.id, Org.name, Member.id, Member.role, Org.period_ends_at, Org.next_expiry_at)
            .join(Member, Member.org_id == Org.id)
            .where(Member.user_id == user_id, Member.status == MemberStatus.ACTIVE)
            .order_by(Org.name, Org.id)
        ).all()
        due = [row[0] for row in rows if settlement_due(row, uow.now)]
    for org_id in due:
        periods.settle_due(uow, org_id)
    return [
        MembershipView(org_id, name, member_id, Role(role))
        for org_id, name, member_id, role, _, _ in rows
    ]
