"""Invitations: the org's rotating invite link, and single-use e-mailed invitations.

An e-mailed invitation carries a secret token `<org id>.<invitation id>.<secret>`; only a hash
of the secret is stored. It is accepted once, by the signed-in user with the invited e-mail,
within 14 days. Accepting or joining by link goes through members.join, so a removed member
who comes back finds its history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, select

from creditpool.domain.errors import AlreadyMember, InvalidInput, InviteInvalid, NotFound
from creditpool.domain.model import InvitationStatus, MemberStatus, Role, Seat
from creditpool.domain.roles import may_grant
from creditpool.services import mail
from creditpool.services.auth import check_may_grant, standing_of
from creditpool.services.lookups import load_org
from creditpool.services.members import join
from creditpool.services.transactions import run_write
from creditpool.services.users import normalise_email
from creditpool.services.views import MemberView, member_view
from creditpool.storage.ids import digest_secret, new_id, new_secret, secret_matches
from creditpool.storage.schema import Group, GroupMember, Invitation, Member, Org, User
from creditpool.storage.unit_of_work import UnitOfWork

INVITATION_LIFETIME = timedelta(days=14)
MAX_EMAILS = 100


@dataclass(frozen=True)
class InvitationView:
    """An invitation as admins see it (never its token)."""

    id: str
    email: str
    role: Role
    seat: Seat
    status: InvitationStatus
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class InviteLink:
    """The org's invite code and the link that carries it."""

    code: str
    url: str


def _view(invitation: Invitation, now: datetime) -> InvitationView:
    status = InvitationStatus(invitation.status)
    if status is InvitationStatus.PENDING and invitation.expires_at <= now:
        status = InvitationStatus.EXPIRED
    return InvitationView(
        invitation.id,
        invitation.email,
        Role(invitation.role),
        Seat(invitation.seat),
        status,
        invitation.created_at,
        invitation.expires_at,
    )


def join_url(public_url: str, code: str) -> str:
    """Return the link that joins an org by its invite code."""
    return f"{public_url.rstrip('/')}/join/{code}"


def invite_link(uow: UnitOfWork, org_id: str, *, public_url: str) -> InviteLink:
    """Return the org's current invite code and link."""
    with uow:
        org = load_org(uow, org_id)
        return InviteLink(org.invite_code, join_url(public_url, org.invite_code))


def invite_by_email(
    uow: UnitOfWork,
    org_id: str,
    emails: Sequence[str],
    *,
    role: Role = Role.MEMBER,
    seat: Seat = Seat.LICENSED,
    public_url: str,
    actor: str,
    caller_role: Role | None = None,
    idempotency_key: str | None = None,
    group_ids: Sequence[str] = (),
) -> list[InvitationView]:
    """Invite people by e-mail; each gets a single-use link. All of them, or none. Accepting
    puts the person in `group_ids`' groups (those that still exist then).

    `caller_role` is the inviter's role in the org (None: an operator): a manager invites
    members only (Forbidden otherwise). The invitation records `actor` as its sender, so that
    accepting it grants no more than the sender may grant then.
    """
    if role is Role.OWNER:
        raise InvalidInput("nobody is invited as owner; hand the org over instead")
    check_may_grant(caller_role, role, doing="invite")
    if not 1 <= len(emails) <= MAX_EMAILS:
        raise InvalidInput(f"invite 1 to {MAX_EMAILS} e-mail addresses at a time")
    addresses = list(dict.fromkeys(normalise_email(email) for email in emails))

    def apply() -> list[InvitationView]:
        org = load_org(uow, org_id)
        members = set(
            uow.session.scalars(
                select(User.email)
                .join(Member, Member.user_id == User.id)
                .where(
                    Member.org_id == org_id,
                    Member.status == MemberStatus.ACTIVE,
                    User.email.in_(addresses),
                )
            )
        )
        if members:
            raise AlreadyMember(f"{sorted(members)[0]} is already a member of the org")
        views = []
        for address in addresses:
            invitation, token = _new_invitation(uow, org, address, role, seat, actor)
            invitation.group_ids = list(group_ids) or None
            mail.enqueue(
                uow,
                org_id=org_id,
                to_address=address,
                subject=f"You are invited to {org.name}",
                body=_invitation_text(org, invitation.expires_at),
                secret_link=f"{public_url.rstrip('/')}/invitations/{token}",
            )
            views.append(_view(invitation, uow.now))
        uow.session.flush()
        return views

    return run_write(
        uow,
        apply,
        org_id=org_id,
        actor=actor,
        key=idempotency_key,
        operation="invite_by_email",
        arguments={"emails": addresses, "role": role, "seat": seat}
        | ({"groups": sorted(group_ids)} if group_ids else {}),
        result_type=list[InvitationView],
    )


def _new_invitation(
    uow: UnitOfWork, org: Org, address: str, role: Role, seat: Seat, invited_by: str
) -> tuple[Invitation, str]:
    invitation_id, secret = new_id("inv"), new_secret()
    invitation = Invitation(
        org_id=org.id,
        id=invitation_id,
        email=address,
        role=role,
        seat=seat,
        status=InvitationStatus.PENDING,
        token_hash=digest_secret(secret),
        invited_by=invited_by,
        created_at=uow.now,
        expires_at=uow.now + INVITATION_LIFETIME,
    )
    uow.session.add(invitation)
    return invitation, f"{org.id}.{invitation_id}.{secret}"


def _join_groups(uow: UnitOfWork, org_id: str, member_id: str, group_ids: Sequence[str]) -> None:
    """Put the member in those of the groups that still exist and hold it not yet."""
    if not group_ids:
        return
    existing = set(
        uow.session.scalars(select(Group.id).where(Group.org_id == org_id, Group.id.in_(group_ids)))
    )
    present = set(
        uow.session.scalars(
            select(GroupMember.group_id).where(
                GroupMember.org_id == org_id, GroupMember.member_id == member_id
            )
        )
    )
    for group_id in sorted(existing - present):
        uow.session.add(GroupMember(org_id=org_id, group_id=group_id, member_id=member_id))
    uow.session.flush()


def _invitation_text(org: Org, expires_at: datetime) -> str:
    # The link itself waits apart and joins the text only when sent (see services.mail).
    return (
        f"Hello,\n\nYou are invited to join {org.name} on creditpool.\n\n"
        f"Accept the invitation here (sign up first if you have no account):\n{mail.LINK}\n\n"
        f"The link works once, until {expires_at:%Y-%m-%d %H:%M} UTC.\n"
    )


def list_invitations(
    uow: UnitOfWork,
    org_id: str,
    *,
    status: InvitationStatus | None = None,
    before: str | None = None,
    limit: int | None = None,
) -> list[InvitationView]:
    """Return the org's invitations, newest first, optionally of one status; a page of them
    with `before` (the last id of the previous page) and `limit`."""
    with uow:
        load_org(uow, org_id)
        query = (
            select(Invitation)
            .where(Invitation.org_id == org_id, *_of_status(status, uow.now))
            .order_by(Invitation.id.desc())
        )
        if before is not None:
            query = query.where(Invitation.id < before)
        if limit is not None:
            query = query.limit(limit)
        return [_view(invitation, uow.now) for invitation in uow.session.scalars(query)]


def count_invitations(
    uow: UnitOfWork, org_id: str, *, status: InvitationStatus | None = None
) -> int:
    """Return how many invitations the org has, optionally of one status."""
    with uow:
        return (
            uow.session.scalar(
                select(func.count())
                .select_from(Invitation)
                .where(Invitation.org_id == org_id, *_of_status(status, uow.now))
            )
            or 0
        )


def _of_status(status: InvitationStatus | None, now: datetime) -> list[ColumnElement[bool]]:
    """The conditions for one shown status: a pending invitation past its expiry is expired."""
    if status is None:
        return []
    if status is InvitationStatus.PENDING:
        return [Invitation.status == status, Invitation.expires_at > now]
    if status is InvitationStatus.EXPIRED:
        lapsed = (Invitation.status == InvitationStatus.PENDING) & (Invitation.expires_at <= now)
        return [(Invitation.status == status) | lapsed]
    return [Invitation.status == status]


def revoke_invitation(uow: UnitOfWork, org_id: str, invitation_id: str) -> None:
    """Withdraw a pending invitation; its link stops working. Revoking twice changes nothing."""

    def apply() -> None:
        invitation = uow.session.get(Invitation, (org_id, invitation_id))
        if invitation is None:
            raise NotFound(f"no invitation {invitation_id} in this org")
        if invitation.status == InvitationStatus.PENDING:
            invitation.status = InvitationStatus.REVOKED

    run_write(uow, apply)


def accept_invitation(
    uow: UnitOfWork, token: str, *, user_id: str, idempotency_key: str | None = None
) -> MemberView:
    """Make the signed-in user a member through an e-mailed invitation addressed to it."""
    parts = token.split(".")
    if len(parts) != 3:
        raise InviteInvalid("this invitation link is not valid")
    org_id, invitation_id, secret = parts

    def apply() -> MemberView:
        invitation = uow.session.get(
            Invitation, (org_id, invitation_id), with_for_update={"key_share": True}
        )
        if invitation is None or not secret_matches(secret, invitation.token_hash):
            raise InviteInvalid("this invitation link is not valid")
        if _view(invitation, uow.now).status is not InvitationStatus.PENDING:
            raise InviteInvalid(f"this invitation is {_view(invitation, uow.now).status}")
        user = uow.session.get(User, user_id)
        if user is None or user.email != invitation.email:
            raise InviteInvalid("this invitation was sent to another e-mail address")
        org = load_org(uow, org_id, lock=True)
        role = _role_granted(uow, invitation)
        member = join(uow, org, user_id=user_id, role=role, seat=Seat(invitation.seat))
        _join_groups(uow, org_id, member.id, invitation.group_ids or ())
        invitation.status = InvitationStatus.ACCEPTED
        return member_view(uow, org, member)

    return run_write(
        uow,
        apply,
        org_id=org_id,
        actor=f"user:{user_id}",
        key=idempotency_key,
        operation="accept_invitation",
        arguments={"invitation": invitation_id},
        result_type=MemberView,
    )


def _role_granted(uow: UnitOfWork, invitation: Invitation) -> Role:
    """The role accepting the invitation grants: no more than its sender may grant now.

    A sender who may still invite but no longer make managers (an owner who has handed the org
    over, say) lets the person in as a member; a sender who can no longer invite at all
    (removed, a member now, no longer an operator, a revoked operator key) voids it. An
    invitation older than the record of its sender grants at most the member role.
    """
    invited = Role(invitation.role)
    if invitation.invited_by is None:
        return Role.MEMBER
    sender = standing_of(uow, invitation.org_id, invitation.invited_by)
    if sender is None:
        raise InviteInvalid(
            "whoever sent this invitation can no longer invite people to this org; "
            "ask its owner or a manager for a new one"
        )
    return invited if may_grant(sender.role, invited) else Role.MEMBER


def join_by_code(
    uow: UnitOfWork, code: str, *, user_id: str, idempotency_key: str | None = None
) -> MemberView:
    """Make the signed-in user a member through the org's invite link (role member, licensed)."""

    def apply() -> MemberView:
        org_id = uow.session.scalars(select(Org.id).where(Org.invite_code == code)).first()
        if org_id is None:
            raise InviteInvalid("this invite link is unknown or was replaced by a newer one")
        org = load_org(uow, org_id, lock=True)
        if org.invite_code != code:  # rotated while we waited for the lock
            raise InviteInvalid("this invite link was replaced by a newer one")
        member = join(uow, org, user_id=user_id, role=Role.MEMBER, seat=Seat.LICENSED)
        return member_view(uow, org, member)

    return run_write(
        uow,
        apply,
        org_id="",
        actor=f"user:{user_id}",
        key=idempotency_key,
        operation="join_by_code",
        arguments={"code": code},
        result_type=MemberView,
    )


@dataclass(frozen=True)
class InvitationSummary:
    """What a person following an invitation may see before accepting it."""

    org_name: str
    email: str
    status: InvitationStatus


def describe_invitation(uow: UnitOfWork, token: str) -> InvitationSummary:
    """Return the org and address an invitation link is for; InviteInvalid for a bad link."""
    parts = token.split(".")
    if len(parts) != 3:
        raise InviteInvalid("this invitation link is not valid")
    org_id, invitation_id, secret = parts
    with uow:
        invitation = uow.session.get(Invitation, (org_id, invitation_id))
        if invitation is None or not secret_matches(secret, invitation.token_hash):
            raise InviteInvalid("this invitation link is not valid")
        org = load_org(uow, org_id)
        return InvitationSummary(org.name, invitation.email, _view(invitation, uow.now).status)


def org_name_for_code(uow: UnitOfWork, code: str) -> str:
    """Return the name of the org an invite code joins; InviteInvalid for an unknown code."""
    with uow:
        name = uow.session.scalars(select(Org.name).where(Org.invite_code == code)).first()
        if name is None:
            raise InviteInvalid("this invite link is unknown or was replaced by a newer one")
        return name
