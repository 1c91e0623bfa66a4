"""Invitations, members and groups."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Depends, Query, Request, status

from creditpool.api.deps import (
    Allow,
    AllowMemberChange,
    AllowOwnMember,
    ConfigDep,
    CurrentUserId,
    IdempotencyKey,
    UowDep,
)
from creditpool.api.pages import Cursor, Limit, page
from creditpool.api.rate_limits import SignedInLimit
from creditpool.api.routing import api_router
from creditpool.api.schemas import (
    Group,
    GroupMembers,
    Invitation,
    Invitations,
    InviteLink,
    Member,
    MemberChange,
    NewGroup,
    NewInvitations,
    Page,
)
from creditpool.domain.model import InvitationStatus, MemberStatus
from creditpool.domain.roles import Permission
from creditpool.services import groups, invitations, members, orgs
from creditpool.services.auth import Grant

router = api_router("members")

Manage = Annotated[Grant, Depends(Allow(Permission.MANAGE))]
Read = Annotated[Grant, Depends(Allow(Permission.READ))]


@router.get("/orgs/{org}/invite-link", summary="The invite link")
def invite_link(org: str, uow: UowDep, config: ConfigDep, _: Manage) -> InviteLink:
    """The org's invite code and the link that carries it."""
    link = invitations.invite_link(uow, org, public_url=config.public_url)
    return InviteLink(code=link.code, url=link.url)


@router.post("/orgs/{org}/invite-link/rotate", summary="Rotate the invite link")
def rotate_invite_link(
    org: str,
    uow: UowDep,
    config: ConfigDep,
    grant: Manage,
    idempotency_key: IdempotencyKey = None,
) -> InviteLink:
    """A new code; the old one stops working at once."""
    code = orgs.rotate_invite_code(uow, org, actor=grant.actor, idempotency_key=idempotency_key)
    return InviteLink(code=code, url=invitations.join_url(config.public_url, code))


@router.post(
    "/orgs/{org}/invitations", status_code=status.HTTP_201_CREATED, summary="Invite by e-mail"
)
def invite(
    org: str,
    body: NewInvitations,
    request: Request,
    uow: UowDep,
    config: ConfigDep,
    grant: Manage,
    idempotency_key: IdempotencyKey = None,
) -> Invitations:
    """Invite people by e-mail; each gets a single-use link, sent when SMTP is set up."""
    made = invitations.invite_by_email(
        uow,
        org,
        body.emails,
        role=body.role,
        seat=body.seat,
        public_url=config.public_url,
        actor=grant.actor,
        caller_role=grant.role,
        idempotency_key=idempotency_key,
    )
    request.app.state.on_mail_queued()
    return Invitations(items=[Invitation.of(view) for view in made])


@router.get("/orgs/{org}/invitations", summary="List invitations")
def list_invitations(
    org: str,
    uow: UowDep,
    _: Manage,
    status_: Annotated[InvitationStatus | None, Query(alias="status")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[Invitation]:
    """The org's invitations, newest first."""
    views = invitations.list_invitations(uow, org, status=status_, before=cursor, limit=limit + 1)
    return page([Invitation.of(view) for view in views], limit)


@router.delete(
    "/orgs/{org}/invitations/{invitation}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke an invitation",
)
def revoke_invitation(org: str, invitation: str, uow: UowDep, _: Manage) -> None:
    """The invitation's link stops working."""
    invitations.revoke_invitation(uow, org, invitation)


@router.post(
    "/join/{code}",
    status_code=status.HTTP_201_CREATED,
    summary="Join by invite link",
    dependencies=[SignedInLimit],
)
def join(
    code: str, uow: UowDep, user_id: CurrentUserId, idempotency_key: IdempotencyKey = None
) -> Member:
    """Join the org whose invite code this is, as a member on a licensed seat."""
    return Member.of(
        invitations.join_by_code(uow, code, user_id=user_id, idempotency_key=idempotency_key)
    )


@router.post(
    "/invitations/{token}/accept",
    status_code=status.HTTP_201_CREATED,
    summary="Accept an e-mailed invitation",
    dependencies=[SignedInLimit],
)
def accept(
    token: str, uow: UowDep, user_id: CurrentUserId, idempotency_key: IdempotencyKey = None
) -> Member:
    """Join through an invitation sent to your e-mail address."""
    return Member.of(
        invitations.accept_invitation(uow, token, user_id=user_id, idempotency_key=idempotency_key)
    )


@router.get("/orgs/{org}/members", summary="List members")
def list_members(
    org: str,
    uow: UowDep,
    _: Read,
    status_: Annotated[Literal["active", "removed", "all"], Query(alias="status")] = "active",
    group: Annotated[str | None, Query(max_length=64)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[Member]:
    """Members by id: active by default, removed, or all; optionally of one group."""
    views = members.list_members(
        uow,
        org,
        status=None if status_ == "all" else MemberStatus(status_),
        group_id=group,
        after=cursor,
        limit=limit + 1,
    )
    return page([Member.of(view) for view in views], limit)


@router.get("/orgs/{org}/members/{member}", summary="Get a member")
def get_member(
    org: str, member: str, uow: UowDep, _: Annotated[Grant, Depends(AllowOwnMember())]
) -> Member:
    """A member with its wallet and usage; a member may read only itself."""
    return Member.of(members.get_member(uow, org, member))


@router.patch("/orgs/{org}/members/{member}", summary="Change a seat or role")
def change_member(
    org: str,
    member: str,
    change: MemberChange,
    uow: UowDep,
    grant: Annotated[Grant, Depends(AllowMemberChange())],
) -> Member:
    """The burn rate moves at once; making another member owner hands the org over."""
    return Member.of(
        members.change_member(
            uow,
            org,
            member,
            role=change.role,
            seat=change.seat,
            actor=grant.actor,
            caller_role=grant.role,
        )
    )


@router.delete("/orgs/{org}/members/{member}", summary="Remove a member")
def remove_member(org: str, member: str, uow: UowDep, grant: Manage) -> Member:
    """Removed, with its history kept; its wallet goes back to the pool if returnable. 403
    `forbidden` for a manager removing a manager (only the owner brings one back)."""
    return Member.of(
        members.remove_member(uow, org, member, actor=grant.actor, caller_role=grant.role)
    )


@router.post("/orgs/{org}/members/{member}/restore", summary="Bring a removed member back")
def restore_member(
    org: str, member: str, uow: UowDep, grant: Manage, idempotency_key: IdempotencyKey = None
) -> Member:
    """Active again as it was before its removal: the same role and seat (so the same burn),
    its history, groups and any credits left on it. 409 `already_member` if it is active;
    403 `forbidden` for a manager bringing back a manager (making managers is the owner's)."""
    return Member.of(
        members.restore_member(
            uow,
            org,
            member,
            actor=grant.actor,
            caller_role=grant.role,
            idempotency_key=idempotency_key,
        )
    )


@router.post("/orgs/{org}/groups", status_code=status.HTTP_201_CREATED, summary="Create a group")
def create_group(
    org: str, body: NewGroup, uow: UowDep, grant: Manage, idempotency_key: IdempotencyKey = None
) -> Group:
    """A class inside the org."""
    return Group.of(
        groups.create_group(uow, org, body.name, actor=grant.actor, idempotency_key=idempotency_key)
    )


@router.get("/orgs/{org}/groups", summary="List groups")
def list_groups(
    org: str, uow: UowDep, _: Read, limit: Limit = 50, cursor: Cursor = None
) -> Page[Group]:
    """The org's groups, by name."""
    views = groups.list_groups(uow, org, after=cursor, limit=limit + 1)
    return page([Group.of(view) for view in views], limit)


@router.patch("/orgs/{org}/groups/{group}", summary="Rename a group")
def rename_group(org: str, group: str, body: NewGroup, uow: UowDep, _: Manage) -> Group:
    """Give a group another name."""
    return Group.of(groups.rename_group(uow, org, group, body.name))


@router.put("/orgs/{org}/groups/{group}/members", summary="Set a group's members")
def set_group_members(org: str, group: str, body: GroupMembers, uow: UowDep, _: Manage) -> Group:
    """Who is in the class, all of it."""
    return Group.of(groups.set_group_members(uow, org, group, body.member_ids))


@router.delete(
    "/orgs/{org}/groups/{group}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a group"
)
def delete_group(org: str, group: str, uow: UowDep, _: Manage) -> None:
    """Members are untouched."""
    groups.delete_group(uow, org, group)
