"""The calls about who is in an org: invitations, joining, members, groups and the reset."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from creditpool.client._calls import Call, ListCall, list_query, nothing, parsed, segment
from creditpool.client._models import (
    Group,
    Invitation,
    InvitationStatus,
    InviteLink,
    Member,
    Reset,
    Role,
    Seat,
)


def invite_link(*, org: str) -> Call[InviteLink]:
    """The org's invite code and the link that carries it."""
    return Call("GET", f"/orgs/{segment(org)}/invite-link", parsed(InviteLink))


def rotate_invite_link(*, org: str, idempotency_key: str | None = None) -> Call[InviteLink]:
    """A new invite code; the old one stops working at once."""
    return Call(
        "POST",
        f"/orgs/{segment(org)}/invite-link/rotate",
        parsed(InviteLink),
        idempotency_key=idempotency_key,
    )


def _invitations(body: Any) -> list[Invitation]:
    return [Invitation.model_validate(item) for item in body["items"]]


def invite(
    *,
    org: str,
    emails: Sequence[str],
    role: Literal["manager", "member"] | None = None,
    seat: Seat | None = None,
    idempotency_key: str | None = None,
) -> Call[list[Invitation]]:
    """Invite people by e-mail (a mail goes out when the server has SMTP)."""
    body: dict[str, Any] = {"emails": list(emails)}
    if role is not None:
        body["role"] = role
    if seat is not None:
        body["seat"] = seat
    return Call(
        "POST",
        f"/orgs/{segment(org)}/invitations",
        _invitations,
        body=body,
        idempotency_key=idempotency_key,
    )


def invitations(
    *, org: str, status: InvitationStatus | None = None, limit: int | None = None
) -> ListCall[Invitation]:
    """The org's invitations, those of one status with `status`."""
    query = list_query(limit, status=status)
    return ListCall(f"/orgs/{segment(org)}/invitations", parsed(Invitation), query)


def revoke_invitation(*, org: str, invitation_id: str) -> Call[None]:
    """Take back an invitation that was not accepted yet."""
    return Call("DELETE", f"/orgs/{segment(org)}/invitations/{segment(invitation_id)}", nothing)


def join(*, code: str, idempotency_key: str | None = None) -> Call[Member]:
    """Join an org by its invite code as the signed-in user."""
    return Call("POST", f"/join/{segment(code)}", parsed(Member), idempotency_key=idempotency_key)


def accept_invitation(*, token: str, idempotency_key: str | None = None) -> Call[Member]:
    """Accept an e-mailed invitation as the signed-in user."""
    return Call(
        "POST",
        f"/invitations/{segment(token)}/accept",
        parsed(Member),
        idempotency_key=idempotency_key,
    )


def members(
    *,
    org: str,
    status: Literal["active", "removed", "all"] | None = None,
    group: str | None = None,
    limit: int | None = None,
) -> ListCall[Member]:
    """The org's members: active ones unless `status` says otherwise, one group's with
    `group`."""
    query = list_query(limit, status=status, group=group)
    return ListCall(f"/orgs/{segment(org)}/members", parsed(Member), query)


def get_member(*, org: str, member: str) -> Call[Member]:
    """One member (a member may read only its own)."""
    return Call("GET", f"/orgs/{segment(org)}/members/{segment(member)}", parsed(Member))


def update_member(
    *, org: str, member: str, role: Role | None = None, seat: Seat | None = None
) -> Call[Member]:
    """Change a member's role (owner only) or seat; making another member owner hands the org
    over."""
    body = {name: value for name, value in (("role", role), ("seat", seat)) if value is not None}
    return Call(
        "PATCH", f"/orgs/{segment(org)}/members/{segment(member)}", parsed(Member), body=body
    )


def remove_member(*, org: str, member: str) -> Call[Member]:
    """Remove a member: its holds are voided, its wallet returned if the org is returnable."""
    return Call("DELETE", f"/orgs/{segment(org)}/members/{segment(member)}", parsed(Member))


def restore_member(*, org: str, member: str, idempotency_key: str | None = None) -> Call[Member]:
    """Bring a removed member back with its role, seat and history."""
    return Call(
        "POST",
        f"/orgs/{segment(org)}/members/{segment(member)}/restore",
        parsed(Member),
        idempotency_key=idempotency_key,
    )


def create_group(*, org: str, name: str, idempotency_key: str | None = None) -> Call[Group]:
    """Make a group (a class inside the org)."""
    return Call(
        "POST",
        f"/orgs/{segment(org)}/groups",
        parsed(Group),
        body={"name": name},
        idempotency_key=idempotency_key,
    )


def groups(*, org: str, limit: int | None = None) -> ListCall[Group]:
    """The org's groups."""
    return ListCall(f"/orgs/{segment(org)}/groups", parsed(Group), list_query(limit))


def rename_group(*, org: str, group: str, name: str) -> Call[Group]:
    """Give a group another name."""
    return Call(
        "PATCH", f"/orgs/{segment(org)}/groups/{segment(group)}", parsed(Group), body={"name": name}
    )


def set_group_members(*, org: str, group: str, member_ids: Sequence[str]) -> Call[Group]:
    """Set who is in a group, all of it."""
    return Call(
        "PUT",
        f"/orgs/{segment(org)}/groups/{segment(group)}/members",
        parsed(Group),
        body={"member_ids": list(member_ids)},
    )


def delete_group(*, org: str, group: str) -> Call[None]:
    """Delete a group; its members are untouched."""
    return Call("DELETE", f"/orgs/{segment(org)}/groups/{segment(group)}", nothing)


def preview_reset(*, org: str) -> Call[Reset]:
    """What a reset would do now, changing nothing (owner)."""
    return Call("GET", f"/orgs/{segment(org)}/reset", parsed(Reset))


def reset(*, org: str, idempotency_key: str | None = None) -> Call[Reset]:
    """Remove every member whose role is member, revoke pending invitations and rotate the
    invite code, all or nothing (owner)."""
    return Call(
        "POST", f"/orgs/{segment(org)}/reset", parsed(Reset), idempotency_key=idempotency_key
    )
