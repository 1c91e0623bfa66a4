"""Who may make managers, and what an org API key may read.

Only the owner or an operator makes managers, by any road: inviting, bringing back, changing a
role; and only they remove one. An invitation grants no more than its sender may grant when it
is accepted. An org API key (scope usage) reads only what charging needs: never the invite
code, the invitations or the org's keys.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from sqlalchemy import update

from creditpool.services import mail
from creditpool.storage.schema import Invitation, OperatorKey, User
from creditpool.storage.unit_of_work import UnitOfWork
from tests.api.support import World, problem


def _uow(app: FastAPI) -> UnitOfWork:
    return UnitOfWork(app.state.session_factory, app.state.clock)


def _invite(world: World, token: str, role: str = "member") -> tuple[str, str, str]:
    """Invite a new person as `token`; return the invitation's id, its secret token and the
    invitee's personal token (the invitee signs up with the invited address)."""
    user, invitee = world.api.sign_up("Invitee")
    made = world.api.call(
        "POST",
        f"/orgs/{world.org_id}/invitations",
        token=token,
        json={"emails": [user["email"]], "role": role},
    )
    assert made.status_code == 201, made.text
    return made.json()["items"][0]["id"], _mailed_token(world, user["email"]), invitee


def _mailed_token(world: World, email: str) -> str:
    app = world.api.client.app
    assert isinstance(app, FastAPI)
    texts = [body for _, body, _ in mail.outbox_for(_uow(app), email)]
    found = [match for text in texts for match in re.findall(r"/invitations/(\S+)", text)]
    assert found, texts
    return found[-1]


def _accept(world: World, secret: str, invitee: str) -> Any:
    return world.api.call("POST", f"/invitations/{secret}/accept", token=invitee)


def _set_invitation(app: FastAPI, invitation_id: str, **values: Any) -> None:
    uow = _uow(app)
    with uow:
        uow.session.execute(update(Invitation).where(Invitation.id == invitation_id).values(values))
        uow.commit()


def _roles(world: World) -> dict[str, str]:
    listed = world.api.call(
        "GET", f"/orgs/{world.org_id}/members", token=world.owner, params={"limit": 500}
    )
    return {member["id"]: member["role"] for member in listed.json()["items"]}


# Making managers.


def test_a_manager_cannot_invite_a_manager_but_the_owner_and_an_operator_can(
    world: World,
) -> None:
    api, org = world.api, world.org_id
    path = f"/orgs/{org}/invitations"
    body = {"emails": ["new.manager@example.test"], "role": "manager"}
    problem(api.call("POST", path, token=world.manager, json=body), 403, "forbidden")
    pending = api.call("GET", path, token=world.owner).json()["items"]
    assert pending == []  # the refusal made nothing, and sent nothing
    # A manager still invites members.
    member = {"emails": ["new.member@example.test"], "role": "member"}
    assert api.call("POST", path, token=world.manager, json=member).status_code == 201
    for number, caller in enumerate((world.owner, world.operator)):
        emails = {"emails": [f"manager{number}@example.test"]}
        made = api.call("POST", path, token=caller, json=body | emails)
        assert (made.status_code, made.json()["items"][0]["role"]) == (201, "manager")


def test_an_invitation_accepted_while_its_sender_may_grant_its_role_grants_it(
    world: World,
) -> None:
    _, secret, invitee = _invite(world, world.owner, "manager")
    accepted = _accept(world, secret, invitee)
    assert (accepted.status_code, accepted.json()["role"]) == (201, "manager")


def test_a_manager_invitation_from_an_owner_who_handed_over_makes_a_member(
    world: World,
) -> None:
    _, secret, invitee = _invite(world, world.owner, "manager")
    handed = world.api.call(
        "PATCH",
        f"/orgs/{world.org_id}/members/{world.manager_id}",
        token=world.owner,
        json={"role": "owner"},
    )
    assert handed.status_code == 200, handed.text
    # The sender is a manager now: it may still invite, but no longer make managers.
    accepted = _accept(world, secret, invitee)
    assert (accepted.status_code, accepted.json()["role"]) == (201, "member")


def test_an_invitation_from_a_manager_removed_or_demoted_since_is_void(world: World) -> None:
    api, org = world.api, world.org_id
    _, secret, invitee = _invite(world, world.manager)
    _, later_secret, later_invitee = _invite(world, world.manager)
    demoted = api.call(
        "PATCH",
        f"/orgs/{org}/members/{world.manager_id}",
        token=world.owner,
        json={"role": "member"},
    )
    assert demoted.status_code == 200, demoted.text
    refused = problem(_accept(world, secret, invitee), 404, "invite_invalid")
    assert "can no longer invite" in refused["detail"]
    removed = api.call("DELETE", f"/orgs/{org}/members/{world.manager_id}", token=world.owner)
    assert removed.status_code == 200, removed.text
    problem(_accept(world, later_secret, later_invitee), 404, "invite_invalid")
    # Nobody joined.
    assert len(_roles(world)) == 3  # the owner and the two students


def test_an_invitation_from_an_operator_who_lost_the_power_is_void(
    world: World, app: FastAPI
) -> None:
    # A user made an operator invites; then its operator status is taken away.
    operator_user, operator_token = world.api.sign_up("Vendor")
    uow = _uow(app)
    with uow:
        uow.session.execute(
            update(User).where(User.id == operator_user["id"]).values(is_operator=True)
        )
        uow.commit()
    _, secret, invitee = _invite(world, operator_token, "manager")
    _, still, still_invitee = _invite(world, operator_token, "manager")
    accepted = _accept(world, still, still_invitee)
    assert (accepted.status_code, accepted.json()["role"]) == (201, "manager")
    with uow:
        uow.session.execute(
            update(User).where(User.id == operator_user["id"]).values(is_operator=False)
        )
        uow.commit()
    problem(_accept(world, secret, invitee), 404, "invite_invalid")


def test_an_invitation_from_a_revoked_operator_key_is_void(world: World, app: FastAPI) -> None:
    uow = _uow(app)
    with uow:
        for key_id, revoked_at in (
            ("opk_live", None),
            ("opk_revoked", datetime(2026, 1, 1, tzinfo=UTC)),
        ):
            uow.session.add(
                OperatorKey(
                    id=key_id,
                    name=key_id,
                    secret_hash="0" * 64,
                    created_at=datetime(2025, 1, 1, tzinfo=UTC),
                    revoked_at=revoked_at,
                )
            )
        uow.commit()
    live_id, live, live_invitee = _invite(world, world.operator, "manager")
    gone_id, gone, gone_invitee = _invite(world, world.operator, "manager")
    _set_invitation(app, live_id, invited_by="operator-key:opk_live")
    _set_invitation(app, gone_id, invited_by="operator-key:opk_revoked")
    accepted = _accept(world, live, live_invitee)
    assert (accepted.status_code, accepted.json()["role"]) == (201, "manager")
    problem(_accept(world, gone, gone_invitee), 404, "invite_invalid")


def test_an_invitation_older_than_its_sender_record_grants_at_most_member(
    world: World, app: FastAPI
) -> None:
    invitation_id, secret, invitee = _invite(world, world.owner, "manager")
    _set_invitation(app, invitation_id, invited_by=None)  # made before senders were recorded
    accepted = _accept(world, secret, invitee)
    assert (accepted.status_code, accepted.json()["role"]) == (201, "member")


def test_a_manager_cannot_remove_a_manager_but_the_owner_can(world: World) -> None:
    api, org = world.api, world.org_id
    other = world.student_ids[0]
    promoted = api.call(
        "PATCH", f"/orgs/{org}/members/{other}", token=world.owner, json={"role": "manager"}
    )
    assert promoted.status_code == 200, promoted.text
    path = f"/orgs/{org}/members/{other}"
    problem(api.call("DELETE", path, token=world.manager), 403, "forbidden")
    problem(
        api.call("DELETE", f"/orgs/{org}/members/{world.manager_id}", token=world.manager),
        403,
        "forbidden",
    )
    assert _roles(world)[other] == "manager"  # still active, still a manager
    # A manager still removes a member.
    student = world.student_ids[1]
    assert api.call("DELETE", f"/orgs/{org}/members/{student}", token=world.manager).is_success
    removed = api.call("DELETE", path, token=world.owner)
    assert (removed.status_code, removed.json()["status"]) == (200, "removed")
    # And bringing it back is the owner's too.
    restore = f"{path}/restore"
    problem(api.call("POST", restore, token=world.manager), 403, "forbidden")
    back = api.call("POST", restore, token=world.operator)
    assert (back.status_code, back.json()["role"]) == (200, "manager")


# What an org API key reads.


def test_a_usage_key_never_sees_the_invite_code(world: World) -> None:
    api, org = world.api, world.org_id
    code = world.org["invite_code"]
    read = api.call("GET", f"/orgs/{org}", token=world.usage_key)
    assert read.status_code == 200, read.text
    assert read.json()["invite_code"] is None
    assert read.json()["id"] == org  # the rest is there
    listed = api.call("GET", "/orgs", token=world.usage_key).json()["items"]
    assert [(item["id"], item["invite_code"]) for item in listed] == [(org, None)]
    assert code not in read.text + str(listed)
    # Those who may invite still see it.
    for caller in (world.owner, world.manager, world.operator):
        assert api.call("GET", f"/orgs/{org}", token=caller).json()["invite_code"] == code
    owned = api.call("GET", "/orgs", token=world.owner).json()["items"]
    assert [item["invite_code"] for item in owned] == [code]


def test_a_usage_key_reads_no_invite_link_invitations_or_keys(world: World) -> None:
    api, org = world.api, world.org_id
    for path in ("invite-link", "invitations", "api-keys"):
        refused = problem(
            api.call("GET", f"/orgs/{org}/{path}", token=world.usage_key), 403, "forbidden"
        )
        assert world.org["invite_code"] not in refused["detail"]
