"""The API's invitations and members, and credits over HTTP, row by row. Expected
values are worked out from the API's contract (automatic allocation and access reasons
"exactly" as it says), not read off the code."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from fastapi import FastAPI

from creditpool.services.mail import outbox_for
from creditpool.storage.unit_of_work import UnitOfWork
from tests.api.support import OPERATOR_KEY, World, problem
from tests.support.clock import START, FakeClock


def _member(world: World, member_id: str) -> dict[str, Any]:
    response = world.api.call(
        "GET", f"/orgs/{world.org_id}/members/{member_id}", token=world.manager
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _available(world: World) -> str:
    response = world.api.call("GET", f"/orgs/{world.org_id}/balance", token=world.owner)
    assert response.status_code == 200, response.text
    amount: str = response.json()["available"]
    return amount


def _members(world: World, **params: str) -> list[dict[str, Any]]:
    response = world.api.call(
        "GET", f"/orgs/{world.org_id}/members", token=world.manager, params=params
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _allot(world: World, member_ids: list[str], amount: str) -> dict[str, Any]:
    response = world.api.call(
        "POST",
        f"/orgs/{world.org_id}/allocations",
        token=world.manager,
        json={"member_ids": member_ids, "amount": amount},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _settings(world: World, body: dict[str, Any]) -> None:
    response = world.api.call(
        "PATCH", f"/orgs/{world.org_id}/settings", token=world.owner, json=body
    )
    assert response.status_code == 200, response.text


def _charge(world: World, member_id: str, amount: str, **extra: Any) -> Any:
    return world.api.call(
        "POST",
        f"/orgs/{world.org_id}/members/{member_id}/usage",
        token=world.usage_key,
        json={"amount": amount, **extra},
    )


def _wallet(member: dict[str, Any]) -> tuple[str, str, str, str]:
    return (
        member["credits_available"],
        member["credits_held"],
        member["credits_allocated"],
        member["credits_used"],
    )


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# Invitations ------------------------------------------------------------------------------------


def test_invite_link_rotates_and_the_old_code_stops_at_once(world: World) -> None:
    api, org = world.api, world.org_id
    problem(api.call("GET", f"/orgs/{org}/invite-link", token=world.students[0]), 403, "forbidden")
    link = api.call("GET", f"/orgs/{org}/invite-link", token=world.manager)
    assert link.status_code == 200, link.text
    old = link.json()["code"]
    assert old == world.org["invite_code"]
    assert old in link.json()["url"]

    rotated = api.call("POST", f"/orgs/{org}/invite-link/rotate", token=world.manager)
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["code"]
    assert new != old
    assert new in rotated.json()["url"]
    assert api.call("GET", f"/orgs/{org}/invite-link", token=world.owner).json()["code"] == new

    _, newcomer = api.sign_up("Newcomer")
    problem(api.call("POST", f"/join/{old}", token=newcomer), 404, "invite_invalid")
    joined = api.call("POST", f"/join/{new}", token=newcomer)
    assert joined.status_code == 201, joined.text


def test_email_invitations_are_listed_revoked_and_accepted(world: World, app: FastAPI) -> None:
    api, org = world.api, world.org_id
    invitee, invitee_token = api.sign_up("Invitee")
    other = "someone.else@example.test"
    made = api.call(  # the owner: only the owner (or an operator) makes managers
        "POST",
        f"/orgs/{org}/invitations",
        token=world.owner,
        json={"emails": [invitee["email"], other], "role": "manager", "seat": "unlicensed"},
    )
    assert made.status_code == 201, made.text
    items = made.json()["items"]
    assert [item["email"] for item in items] == [invitee["email"], other]
    for item in items:
        assert (item["role"], item["seat"], item["status"]) == ("manager", "unlicensed", "pending")
    invited_id, other_id = items[0]["id"], items[1]["id"]
    problem(
        api.call(
            "POST", f"/orgs/{org}/invitations", token=world.students[0], json={"emails": [other]}
        ),
        403,
        "forbidden",
    )

    def listed(**params: str) -> dict[str, str]:
        response = api.call("GET", f"/orgs/{org}/invitations", token=world.owner, params=params)
        assert response.status_code == 200, response.text
        return {item["id"]: item["status"] for item in response.json()["items"]}

    assert listed(status="pending") == {invited_id: "pending", other_id: "pending"}
    deleted = api.call("DELETE", f"/orgs/{org}/invitations/{other_id}", token=world.manager)
    assert deleted.status_code == 204, deleted.text
    assert listed(status="pending") == {invited_id: "pending"}
    assert listed()[other_id] == "revoked"

    # The last message to the invitee (signing up mailed it a confirmation link first).
    *_, (_, body, _) = outbox_for(
        UnitOfWork(app.state.session_factory, app.state.clock), invitee["email"]
    )
    match = re.search(r"/invitations/(\S+)", body)
    assert match is not None, body
    accepted = api.call("POST", f"/invitations/{match.group(1)}/accept", token=invitee_token)
    assert accepted.status_code == 201, accepted.text
    member = accepted.json()
    assert (member["role"], member["seat"], member["status"]) == ("manager", "unlicensed", "active")
    assert member["user_id"] == invitee["id"]
    assert listed()[invited_id] == "accepted"
    assert listed(status="pending") == {}


def test_join_by_code_and_rejoin_after_removal_keeps_history(world: World) -> None:
    api, org, code = world.api, world.org_id, world.org["invite_code"]
    joiner_user, joiner = api.sign_up("Joiner")
    joined = api.call("POST", f"/join/{code}", token=joiner)
    assert joined.status_code == 201, joined.text
    member = joined.json()
    assert (member["role"], member["seat"], member["status"]) == ("member", "licensed", "active")
    assert member["user_id"] == joiner_user["id"]
    assert _wallet(member) == ("0", "0", "0", "0")
    problem(api.call("POST", f"/join/{code}", token=joiner), 409, "already_member")
    problem(api.call("POST", "/join/not-a-real-code", token=joiner), 404, "invite_invalid")
    problem(api.call("POST", f"/join/{code}"), 401, "unauthenticated")

    # Give the joiner a past: credits, usage, a group, another role and seat; then remove it
    # from an org that keeps credits on removed members.
    member_id = member["id"]
    _allot(world, [member_id], "5")
    used = _charge(world, member_id, "2", metrics={"renders": 1, "frames": 24})
    assert used.status_code == 201, used.text
    group = api.call("POST", f"/orgs/{org}/groups", token=world.manager, json={"name": "Night"})
    api.call(
        "PUT",
        f"/orgs/{org}/groups/{group.json()['id']}/members",
        token=world.manager,
        json={"member_ids": [member_id]},
    )
    changed = api.call(
        "PATCH",
        f"/orgs/{org}/members/{member_id}",
        token=world.owner,
        json={"role": "manager", "seat": "unlicensed"},
    )
    assert changed.status_code == 200, changed.text
    _settings(world, {"returnable": False})
    removed = api.call("DELETE", f"/orgs/{org}/members/{member_id}", token=world.owner)
    assert removed.json()["status"] == "removed"

    back = api.call("POST", f"/join/{code}", token=joiner)
    assert back.status_code == 201, back.text
    again = back.json()
    assert again["id"] == member_id
    assert (again["role"], again["seat"], again["status"]) == ("member", "licensed", "active")
    assert _wallet(again) == ("3", "0", "5", "2")
    assert again["usage"] == {"renders": 1, "frames": 24}
    assert again["groups"] == [group.json()["id"]]
    mine = api.call(
        "GET", f"/orgs/{org}/transfers", token=world.owner, params={"member": member_id}
    ).json()["items"]
    assert [t["kind"] for t in mine] == ["usage", "allocation"]


# Members ----------------------------------------------------------------------------------------


def test_members_are_listed_by_status_and_group_and_read_by_whom_may(world: World) -> None:
    api, org = world.api, world.org_id
    first, second = world.student_ids
    everyone = {world.owner_id, world.manager_id, first, second}
    assert {m["id"] for m in _members(world)} == everyone
    problem(api.call("GET", f"/orgs/{org}/members", token=world.students[0]), 403, "forbidden")

    removed = api.call("DELETE", f"/orgs/{org}/members/{second}", token=world.manager)
    assert removed.status_code == 200, removed.text
    assert {m["id"] for m in _members(world)} == everyone - {second}
    assert {m["id"] for m in _members(world, status="active")} == everyone - {second}
    assert [m["id"] for m in _members(world, status="removed")] == [second]
    assert {m["id"] for m in _members(world, status="all")} == everyone
    problem(
        api.call("GET", f"/orgs/{org}/members", token=world.owner, params={"status": "gone"}),
        422,
        "validation_error",
    )

    group = api.call("POST", f"/orgs/{org}/groups", token=world.manager, json={"name": "Day"})
    group_id = group.json()["id"]
    api.call(
        "PUT",
        f"/orgs/{org}/groups/{group_id}/members",
        token=world.manager,
        json={"member_ids": [first, world.manager_id]},
    )
    assert {m["id"] for m in _members(world, group=group_id)} == {first, world.manager_id}

    own = api.call("GET", f"/orgs/{org}/members/{first}", token=world.students[0])
    assert own.status_code == 200, own.text
    assert own.json()["id"] == first
    assert own.json()["groups"] == [group_id]
    problem(
        api.call("GET", f"/orgs/{org}/members/{second}", token=world.students[0]),
        403,
        "forbidden",
    )
    problem(api.call("GET", f"/orgs/{org}/members/{first}", token=world.stranger), 404, "not_found")
    # A removed member's record and history stay readable.
    assert _member(world, second)["status"] == "removed"
    problem(
        api.call("GET", f"/orgs/{org}/members/mem_nobody", token=world.manager), 404, "not_found"
    )


def test_a_seat_change_moves_the_burn_rate_at_once(world: World) -> None:
    api, org = world.api, world.org_id
    _settings(world, {"seat_rates": {"licensed": "1", "unlicensed": "0.1", "external": "0"}})

    def burn() -> str:
        rate: str = api.call("GET", f"/orgs/{org}/balance", token=world.owner).json()[
            "burn_rate_per_day"
        ]
        return rate

    assert burn() == "0.010959"  # 4 licensed seats: 4 / 365 = 0.0109589...
    problem(
        api.call(
            "PATCH",
            f"/orgs/{org}/members/{world.student_ids[0]}",
            token=world.students[0],
            json={"seat": "external"},
        ),
        403,
        "forbidden",
    )
    for seat, expected in [("unlicensed", "0.008493"), ("external", "0.008219")]:
        changed = api.call(
            "PATCH",
            f"/orgs/{org}/members/{world.student_ids[0]}",
            token=world.manager,
            json={"seat": seat},
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["seat"] == seat
        assert burn() == expected  # 3.1 / 365 = 0.0084931..., then 3 / 365 = 0.0082191...
    removed = api.call("DELETE", f"/orgs/{org}/members/{world.student_ids[1]}", token=world.manager)
    assert removed.status_code == 200, removed.text
    assert burn() == "0.005479"  # 2 / 365 = 0.0054794...


def test_only_the_owner_changes_roles_and_hands_the_org_over(world: World) -> None:
    api, org = world.api, world.org_id
    first, second = world.student_ids

    def patch(member_id: str, body: dict[str, Any], token: str) -> Any:
        return api.call("PATCH", f"/orgs/{org}/members/{member_id}", token=token, json=body)

    problem(patch(first, {"role": "manager"}, world.manager), 403, "forbidden")
    assert _member(world, first)["role"] == "member"
    promoted = patch(first, {"role": "manager"}, world.owner)
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["role"] == "manager"
    problem(patch(world.owner_id, {"role": "manager"}, world.owner), 409, "owner_required")
    assert _member(world, world.owner_id)["role"] == "owner"

    handed = patch(second, {"role": "owner"}, world.owner)
    assert handed.status_code == 200, handed.text
    assert handed.json()["role"] == "owner"
    roles = {m["id"]: m["role"] for m in _members(world)}
    assert roles == {
        world.owner_id: "manager",
        world.manager_id: "manager",
        first: "manager",
        second: "owner",
    }
    # The powers went with the role.
    problem(
        api.call("PATCH", f"/orgs/{org}/settings", token=world.owner, json={"returnable": False}),
        403,
        "forbidden",
    )
    new_owner = api.call(
        "PATCH", f"/orgs/{org}/settings", token=world.students[1], json={"returnable": False}
    )
    assert new_owner.status_code == 200, new_owner.text


def test_removing_a_member_returns_its_wallet_only_when_returnable(world: World) -> None:
    api, org = world.api, world.org_id
    first, second = world.student_ids
    _allot(world, [first, second], "10")
    hold = api.call(
        "POST", f"/orgs/{org}/members/{first}/holds", token=world.usage_key, json={"amount": "4"}
    )
    assert hold.status_code == 201, hold.text
    problem(
        api.call("DELETE", f"/orgs/{org}/members/{first}", token=world.students[1]),
        403,
        "forbidden",
    )

    removed = api.call("DELETE", f"/orgs/{org}/members/{first}", token=world.manager)
    assert removed.status_code == 200, removed.text
    assert (removed.json()["id"], removed.json()["status"]) == (first, "removed")
    assert removed.json()["credits_available"] == "0"
    assert removed.json()["credits_held"] == "0"
    voided = api.call("GET", f"/orgs/{org}/holds/{hold.json()['id']}", token=world.usage_key)
    assert voided.json()["status"] == "voided"
    assert _available(world) == "90"  # 80 left after allotting, and all 10 came back

    _settings(world, {"returnable": False})
    kept = api.call("DELETE", f"/orgs/{org}/members/{second}", token=world.manager)
    assert kept.status_code == 200, kept.text
    assert (kept.json()["status"], kept.json()["credits_available"]) == ("removed", "10")
    assert _available(world) == "90"

    problem(
        api.call("DELETE", f"/orgs/{org}/members/{world.owner_id}", token=world.owner),
        409,
        "owner_required",
    )
    assert _member(world, world.owner_id)["status"] == "active"


def test_a_removed_member_is_brought_back_as_it_was(world: World) -> None:
    api, org = world.api, world.org_id
    first = world.student_ids[0]
    changed = api.call(
        "PATCH", f"/orgs/{org}/members/{first}", token=world.manager, json={"seat": "external"}
    )
    assert changed.status_code == 200, changed.text
    _settings(world, {"returnable": False})
    _allot(world, [first], "3")
    api.call("DELETE", f"/orgs/{org}/members/{first}", token=world.manager)
    path = f"/orgs/{org}/members/{first}/restore"

    back = api.call("POST", path, token=world.manager, key="back-1")
    again = api.call("POST", path, token=world.manager, key="back-1")

    assert back.status_code == 200, back.text
    body = back.json()
    assert (body["id"], body["status"], body["role"], body["seat"]) == (
        first,
        "active",
        "member",
        "external",
    )
    assert body["credits_available"] == "3"  # kept on it while it was away
    assert (again.status_code, again.headers["Idempotent-Replayed"]) == (200, "true")
    assert again.json() == body
    problem(api.call("POST", path, token=world.manager), 409, "already_member")
    problem(api.call("POST", path, token=world.students[1]), 403, "forbidden")


def test_groups_are_created_filled_listed_and_deleted_leaving_members_be(world: World) -> None:
    api, org = world.api, world.org_id
    first, second = world.student_ids
    problem(
        api.call("POST", f"/orgs/{org}/groups", token=world.students[0], json={"name": "X"}),
        403,
        "forbidden",
    )
    created = api.call("POST", f"/orgs/{org}/groups", token=world.manager, json={"name": "Morning"})
    assert created.status_code == 201, created.text
    group = created.json()
    assert (group["name"], group["member_count"]) == ("Morning", 0)

    filled = api.call(
        "PUT",
        f"/orgs/{org}/groups/{group['id']}/members",
        token=world.manager,
        json={"member_ids": [first, second]},
    )
    assert filled.status_code == 200, filled.text
    assert (filled.json()["id"], filled.json()["member_count"]) == (group["id"], 2)
    narrowed = api.call(
        "PUT",
        f"/orgs/{org}/groups/{group['id']}/members",
        token=world.manager,
        json={"member_ids": [second]},
    )
    assert narrowed.json()["member_count"] == 1
    assert _member(world, first)["groups"] == []
    assert _member(world, second)["groups"] == [group["id"]]
    listed = api.call("GET", f"/orgs/{org}/groups", token=world.owner).json()["items"]
    assert listed == [{"id": group["id"], "name": "Morning", "member_count": 1}]

    _allot(world, [second], "3")
    deleted = api.call("DELETE", f"/orgs/{org}/groups/{group['id']}", token=world.manager)
    assert deleted.status_code == 204, deleted.text
    assert api.call("GET", f"/orgs/{org}/groups", token=world.owner).json()["items"] == []
    member = _member(world, second)
    assert (member["status"], member["credits_available"], member["groups"]) == (
        "active",
        "3",
        [],
    )
    assert len(_members(world)) == 4


# Credits ----------------------------------------------------------------------------------------


def test_allocations_to_named_members_all_students_or_a_group(world: World) -> None:
    api, org = world.api, world.org_id
    first, second = world.student_ids
    path = f"/orgs/{org}/allocations"

    named = _allot(world, [first], "2.5")
    assert named["batch_id"]
    assert named["total"] == "2.5"
    assert [(m["id"], m["credits_available"]) for m in named["members"]] == [(first, "2.5")]

    everyone = api.call("POST", path, token=world.owner, json={"member_ids": "all", "amount": 1})
    assert everyone.status_code == 201, everyone.text
    assert everyone.json()["total"] == "2"  # the two students only: role member
    assert {m["id"] for m in everyone.json()["members"]} == {first, second}

    group = api.call("POST", f"/orgs/{org}/groups", token=world.manager, json={"name": "G"})
    group_id = group.json()["id"]
    api.call(
        "PUT",
        f"/orgs/{org}/groups/{group_id}/members",
        token=world.manager,
        json={"member_ids": [second, world.manager_id]},
    )
    by_group = api.call(
        "POST", path, token=world.manager, json={"group_id": group_id, "amount": "3"}
    )
    assert by_group.status_code == 201, by_group.text
    assert by_group.json()["total"] == "6"
    assert {m["id"] for m in by_group.json()["members"]} == {second, world.manager_id}
    assert _available(world) == "89.5"  # 100 - 2.5 - 2 - 6
    assert _member(world, second)["credits_allocated"] == "4"

    for body in [
        {"member_ids": [first], "group_id": group_id, "amount": "1"},
        {"amount": "1"},
    ]:
        problem(api.call("POST", path, token=world.manager, json=body), 422, "validation_error")
    problem(
        api.call("POST", path, token=world.manager, json={"member_ids": [first], "amount": "0"}),
        422,
        "invalid_amount",
    )
    problem(
        api.call(
            "POST",
            path,
            token=world.manager,
            json={"member_ids": [first, "mem_nobody"], "amount": 1},
        ),
        404,
        "not_found",
    )
    problem(
        api.call(
            "POST",
            path,
            token=world.manager,
            json={"member_ids": [first, world.other_org["id"]], "amount": 1},
        ),
        404,
        "not_found",
    )
    # 2 x 45 = 90 is more than the 89.5 in the pool: nobody gets anything.
    problem(
        api.call(
            "POST", path, token=world.manager, json={"member_ids": [first, second], "amount": 45}
        ),
        409,
        "insufficient_credits",
    )
    problem(
        api.call("POST", path, token=world.students[0], json={"member_ids": [first], "amount": 1}),
        403,
        "forbidden",
    )
    assert _available(world) == "89.5"
    assert _member(world, first)["credits_available"] == "3.5"

    api.call("DELETE", f"/orgs/{org}/members/{second}", token=world.manager)
    problem(
        api.call("POST", path, token=world.manager, json={"member_ids": [second], "amount": 1}),
        404,
        "not_found",
    )
    # "all" is every *active* student now: just the first.
    after = api.call("POST", path, token=world.manager, json={"member_ids": "all", "amount": 1})
    assert [m["id"] for m in after.json()["members"]] == [first]


def test_revocations_take_an_amount_or_all_and_all_or_nothing(world: World) -> None:
    api, org = world.api, world.org_id
    first, second = world.student_ids
    path = f"/orgs/{org}/revocations"
    _allot(world, [first, second], "10")

    some = api.call("POST", path, token=world.manager, json={"member_ids": [first], "amount": "4"})
    assert some.status_code == 201, some.text
    assert some.json()["total"] == "4"
    assert [(m["id"], m["credits_available"]) for m in some.json()["members"]] == [(first, "6")]

    every = api.call("POST", path, token=world.manager, json={"member_ids": "all"})
    assert every.status_code == 201, every.text
    assert every.json()["total"] == "16"  # 6 + 10
    assert {m["credits_available"] for m in every.json()["members"]} == {"0"}
    assert _available(world) == "100"
    problem(
        api.call("POST", path, token=world.manager, json={"member_ids": [first], "amount": "1"}),
        409,
        "insufficient_credits",
    )

    _allot(world, [first], "5")
    _allot(world, [second], "10")
    # The first has 5, less than 6: neither gives anything back.
    problem(
        api.call(
            "POST", path, token=world.manager, json={"member_ids": [first, second], "amount": 6}
        ),
        409,
        "insufficient_credits",
    )
    assert (
        _member(world, first)["credits_available"],
        _member(world, second)["credits_available"],
    ) == ("5", "10")

    # Without amount, "all it has available": held credits stay.
    hold = api.call(
        "POST", f"/orgs/{org}/members/{second}/holds", token=world.usage_key, json={"amount": "2"}
    )
    assert hold.status_code == 201, hold.text
    group = api.call("POST", f"/orgs/{org}/groups", token=world.manager, json={"name": "G"})
    api.call(
        "PUT",
        f"/orgs/{org}/groups/{group.json()['id']}/members",
        token=world.manager,
        json={"member_ids": [second]},
    )
    by_group = api.call("POST", path, token=world.manager, json={"group_id": group.json()["id"]})
    assert by_group.status_code == 201, by_group.text
    assert by_group.json()["total"] == "8"
    [member] = by_group.json()["members"]
    assert (member["credits_available"], member["credits_held"]) == ("0", "2")
    assert _available(world) == "93"  # 100 - 5 - 10 + 8

    _settings(world, {"returnable": False})
    problem(
        api.call("POST", path, token=world.manager, json={"member_ids": [first], "amount": "1"}),
        409,
        "not_returnable",
    )
    assert _member(world, first)["credits_available"] == "5"
    assert _available(world) == "93"


def test_usage_charges_the_wallet_with_metrics_or_refuses(world: World) -> None:
    api, org = world.api, world.org_id
    first, second = world.student_ids
    _allot(world, [first], "10")

    charged = _charge(world, first, "2.5", metrics={"renders": 1, "frames": 240}, reference="job-1")
    assert charged.status_code == 201, charged.text
    transfer, member = charged.json()["transfer"], charged.json()["member"]
    assert (transfer["kind"], transfer["amount"], transfer["member_id"]) == ("usage", "2.5", first)
    assert (transfer["reference"], transfer["metrics"]) == ("job-1", {"renders": 1, "frames": 240})
    assert _wallet(member) == ("7.5", "0", "10", "2.5")
    assert member["usage"] == {"renders": 1, "frames": 240}

    by_operator = api.call(
        "POST",
        f"/orgs/{org}/members/{first}/usage",
        token=OPERATOR_KEY,
        json={"amount": 1, "metrics": {"renders": 2}},
    )
    assert by_operator.status_code == 201, by_operator.text
    assert by_operator.json()["member"]["usage"] == {"renders": 3, "frames": 240}
    problem(
        api.call(
            "POST", f"/orgs/{org}/members/{first}/usage", token=world.manager, json={"amount": 1}
        ),
        403,
        "forbidden",
    )

    problem(_charge(world, first, "6.500001"), 409, "insufficient_credits")
    problem(_charge(world, first, "-1"), 422, "invalid_amount")
    problem(_charge(world, first, "1", metrics={"renders": -1}), 422, "validation_error")
    problem(_charge(world, "mem_nobody", "1"), 404, "not_found")
    assert _wallet(_member(world, first)) == ("6.5", "0", "10", "3.5")
    org_body = api.call("GET", f"/orgs/{org}", token=world.owner).json()
    assert org_body["usage"] == {"renders": 3, "frames": 240}
    assert org_body["balance"]["used"] == "3.5"

    api.call("POST", f"/orgs/{org}/pause", token=world.owner)
    problem(_charge(world, first, "1"), 409, "org_paused")
    api.call("POST", f"/orgs/{org}/resume", token=world.owner)

    _allot(world, [second], "5")
    _settings(world, {"returnable": False})
    api.call("DELETE", f"/orgs/{org}/members/{second}", token=world.manager)
    problem(_charge(world, second, "1"), 409, "member_removed")
    assert _member(world, second)["credits_available"] == "5"


def test_automatic_allocation_tops_up_in_bundles_up_to_the_cap(world: World) -> None:
    api, org = world.api, world.org_id
    first, second = world.student_ids
    _settings(world, {"auto_allocation": {"enabled": True, "bundle": "5", "max_per_member": "20"}})

    def state() -> tuple[str, str, str]:
        member = _member(world, first)
        return member["credits_available"], member["auto_allocated"], _available(world)

    # w = 0, amount 7: the least k with 0 + 5k >= 7 is 2, so 10 comes, 7 goes.
    topped = _charge(world, first, "7")
    assert topped.status_code == 201, topped.text
    assert topped.json()["member"]["auto_allocated"] == "10"
    assert topped.json()["member"]["credits_allocated"] == "10"
    assert state() == ("3", "10", "90")
    kinds = api.call(
        "GET", f"/orgs/{org}/transfers", token=world.owner, params={"member": first}
    ).json()["items"]
    assert [(t["kind"], t["amount"]) for t in kinds] == [
        ("usage", "7"),
        ("auto_allocation", "10"),
    ]

    assert _charge(world, first, "2").status_code == 201  # w = 3 covers it: no bundle
    assert state() == ("1", "10", "90")

    # w = 1, amount 12: k = 3 would make 25 > 20: refused, nothing moves.
    problem(_charge(world, first, "12"), 409, "insufficient_credits")
    assert state() == ("1", "10", "90")
    # w = 1, amount 11: k = 2 makes exactly 20, the cap.
    assert _charge(world, first, "11").status_code == 201
    assert state() == ("0", "20", "80")
    problem(_charge(world, first, "0.5"), 409, "insufficient_credits")

    # Manual allotment never counts toward the cap; revocation does not lower it.
    _allot(world, [first], "3")
    assert state() == ("3", "20", "77")
    revoked = api.call(
        "POST", f"/orgs/{org}/revocations", token=world.manager, json={"member_ids": [first]}
    )
    assert revoked.status_code == 201, revoked.text
    assert state() == ("0", "20", "80")

    _settings(world, {"auto_allocation": {"max_per_member": "30"}})
    assert _charge(world, first, "4").status_code == 201  # one more bundle: 25
    assert state() == ("1", "25", "75")

    # The pool must hold the bundles: leave it 2.5, less than one bundle.
    _allot(world, [second], "72.5")
    problem(_charge(world, first, "6"), 409, "insufficient_credits")
    assert state() == ("1", "25", "2.5")

    # Lowering the cap below what was given only stops further bundles.
    _settings(world, {"auto_allocation": {"max_per_member": "10"}})
    assert state() == ("1", "25", "2.5")


def test_holds_reserve_then_capture_or_void(world: World, clock: FakeClock) -> None:
    api, org = world.api, world.org_id
    first = world.student_ids[0]
    holds = f"/orgs/{org}/members/{first}/holds"
    _allot(world, [first], "10")

    placed = api.call(
        "POST", holds, token=world.usage_key, json={"amount": "6", "reference": "render-9"}
    )
    assert placed.status_code == 201, placed.text
    hold = placed.json()
    assert (hold["member_id"], hold["amount"], hold["status"]) == (first, "6", "pending")
    assert (hold["captured"], hold["reference"]) == (None, "render-9")
    assert _instant(hold["expires_at"]) == START + timedelta(seconds=3600)
    assert _wallet(_member(world, first)) == ("4", "6", "10", "0")
    problem(
        api.call("POST", holds, token=world.usage_key, json={"amount": "4.5"}),
        409,
        "insufficient_credits",
    )
    problem(api.call("POST", holds, token=world.manager, json={"amount": "1"}), 403, "forbidden")
    problem(
        api.call("POST", holds, token=world.usage_key, json={"amount": "1", "expires_in": 604_801}),
        422,
        "validation_error",
    )

    capture = f"/orgs/{org}/holds/{hold['id']}/capture"
    problem(
        api.call("POST", capture, token=world.usage_key, json={"amount": "6.000001"}),
        409,
        "insufficient_credits",
    )
    captured = api.call(
        "POST", capture, token=world.usage_key, json={"amount": "4.5", "metrics": {"renders": 1}}
    )
    assert captured.status_code == 201, captured.text
    assert (captured.json()["transfer"]["kind"], captured.json()["transfer"]["amount"]) == (
        "usage",
        "4.5",
    )
    assert _wallet(captured.json()["member"]) == ("5.5", "0", "10", "4.5")
    assert captured.json()["member"]["usage"] == {"renders": 1}
    problem(
        api.call("POST", capture, token=world.usage_key, json={"amount": "1"}),
        409,
        "insufficient_credits",
    )
    after = api.call("GET", f"/orgs/{org}/holds/{hold['id']}", token=world.usage_key).json()
    assert (after["status"], after["captured"]) == ("captured", "4.5")

    second = api.call("POST", holds, token=world.usage_key, json={"amount": "3", "expires_in": 60})
    assert second.status_code == 201, second.text
    assert _instant(second.json()["expires_at"]) == START + timedelta(seconds=60)
    voided = api.call(
        "POST", f"/orgs/{org}/holds/{second.json()['id']}/void", token=world.usage_key
    )
    assert voided.status_code == 200, voided.text
    assert (voided.json()["status"], voided.json()["captured"]) == ("voided", None)
    assert _wallet(_member(world, first)) == ("5.5", "0", "10", "4.5")
    problem(
        api.call(
            "POST",
            f"/orgs/{org}/holds/{second.json()['id']}/capture",
            token=world.usage_key,
            json={"amount": "1"},
        ),
        409,
        "insufficient_credits",
    )

    # An expired hold releases itself and can no longer be captured.
    third = api.call("POST", holds, token=world.usage_key, json={"amount": "2", "expires_in": 60})
    assert _member(world, first)["credits_available"] == "3.5"
    clock.advance(seconds=61)
    problem(
        api.call(
            "POST",
            f"/orgs/{org}/holds/{third.json()['id']}/capture",
            token=world.usage_key,
            json={"amount": "1"},
        ),
        409,
        "insufficient_credits",
    )
    assert _wallet(_member(world, first)) == ("5.5", "0", "10", "4.5")

    api.call("POST", f"/orgs/{org}/pause", token=world.owner)
    problem(api.call("POST", holds, token=world.usage_key, json={"amount": "1"}), 409, "org_paused")


def test_a_hold_tops_up_under_automatic_allocation(world: World) -> None:
    api, org = world.api, world.org_id
    first = world.student_ids[0]
    _settings(world, {"auto_allocation": {"enabled": True, "bundle": "5", "max_per_member": "10"}})
    placed = api.call(
        "POST", f"/orgs/{org}/members/{first}/holds", token=world.usage_key, json={"amount": "6"}
    )
    assert placed.status_code == 201, placed.text
    member = _member(world, first)
    assert (member["credits_available"], member["credits_held"], member["auto_allocated"]) == (
        "4",
        "6",
        "10",
    )
    problem(
        api.call(
            "POST",
            f"/orgs/{org}/members/{first}/holds",
            token=world.usage_key,
            json={"amount": "5"},
        ),
        409,
        "insufficient_credits",
    )
    assert _available(world) == "90"


def test_batch_usage_answers_each_event_in_order_and_once_per_key(world: World) -> None:
    api, org = world.api, world.org_id
    first, second = world.student_ids
    path = f"/orgs/{org}/usage"
    _allot(world, [first], "10")
    _allot(world, [second], "1")

    events = [
        {"key": "a", "member_id": first, "amount": "2", "metrics": {"frames": 10}},
        {"key": "b", "member_id": second, "amount": "5"},
        {"key": "c", "member_id": "mem_nobody", "amount": "1"},
        {"key": "d", "member_id": first, "amount": "abc"},
        {"key": "e", "member_id": first, "amount": 1},
    ]
    sent = api.call("POST", path, token=world.usage_key, json={"events": events})
    assert sent.status_code == 200, sent.text
    results = sent.json()["results"]
    assert [(r["key"], r["status"], r.get("code")) for r in results] == [
        ("a", 201, None),
        ("b", 409, "insufficient_credits"),
        ("c", 404, "not_found"),
        ("d", 422, "invalid_amount"),
        ("e", 201, None),
    ]
    assert results[0]["transfer_id"]
    assert results[4]["transfer_id"]
    assert results[0]["transfer_id"] != results[4]["transfer_id"]
    assert _member(world, first)["credits_available"] == "7"
    assert _member(world, first)["usage"] == {"frames": 10}
    assert _member(world, second)["credits_available"] == "1"

    # A key seen before answers its first result and charges nothing, even when the event
    # would now succeed; a key repeated inside one request is charged once.
    _allot(world, [second], "10")
    repeated = [
        {"key": "a", "member_id": first, "amount": "2", "metrics": {"frames": 10}},
        {"key": "b", "member_id": second, "amount": "5"},
        {"key": "f", "member_id": second, "amount": "1"},
        {"key": "f", "member_id": second, "amount": "1"},
    ]
    again = api.call("POST", path, token=world.usage_key, json={"events": repeated})
    assert again.status_code == 200, again.text
    results = again.json()["results"]
    assert [(r["key"], r["status"], r.get("code")) for r in results] == [
        ("a", 201, None),
        ("b", 409, "insufficient_credits"),
        ("f", 201, None),
        ("f", 201, None),
    ]
    assert results[0]["transfer_id"] == sent.json()["results"][0]["transfer_id"]
    assert results[2]["transfer_id"] == results[3]["transfer_id"]
    assert _member(world, first)["credits_available"] == "7"
    assert _member(world, second)["credits_available"] == "10"
    # A key is unique per org, whoever sends it.
    by_operator = api.call("POST", path, token=OPERATOR_KEY, json={"events": repeated[:1]})
    assert by_operator.status_code == 200, by_operator.text
    [result] = by_operator.json()["results"]
    assert (result["status"], result["transfer_id"]) == (201, results[0]["transfer_id"])
    assert _member(world, first)["credits_available"] == "7"

    one = {"key": "g", "member_id": first, "amount": "1"}
    for envelope in [
        {"events": one},
        {"events": []},
        {"events": [{**one, "key": f"k{n}"} for n in range(1001)]},
        {},
        [one],
    ]:
        problem(
            api.call("POST", path, token=world.usage_key, json=envelope), 422, "validation_error"
        )
    assert _member(world, first)["credits_available"] == "7"
    problem(api.call("POST", path, token=world.manager, json={"events": [one]}), 403, "forbidden")


def test_batch_usage_a_non_object_event_refuses_only_itself(world: World) -> None:
    first = world.student_ids[0]
    _allot(world, [first], "10")
    events = [{"key": "good", "member_id": first, "amount": "1"}, "not an event"]
    sent = world.api.call(
        "POST", f"/orgs/{world.org_id}/usage", token=world.usage_key, json={"events": events}
    )
    assert sent.status_code == 200, sent.text
    results = sent.json()["results"]
    assert [(r["status"], r.get("code")) for r in results] == [
        (201, None),
        (422, "validation_error"),
    ]
    assert _member(world, first)["credits_available"] == "9"


def test_access_reasons_come_in_api_md_order(world: World) -> None:
    api, org = world.api, world.org_id
    first, second = world.student_ids

    def access(member_id: str = first) -> tuple[bool, str]:
        response = api.call("GET", f"/orgs/{org}/members/{member_id}/access", token=world.usage_key)
        assert response.status_code == 200, response.text
        return response.json()["access"], response.json()["reason"]

    assert access() == (True, "ok")
    problem(
        api.call("GET", f"/orgs/{org}/members/{first}/access", token=world.manager),
        403,
        "forbidden",
    )
    _allot(world, [second], "100")
    assert access() == (True, "ok")  # the pool is empty but nothing is metered yet

    _settings(world, {"seat_rates": {"licensed": "1", "unlicensed": "0.1"}})
    assert access() == (False, "no_credits")
    assert _member(world, first)["access"] is False
    api.call("POST", f"/orgs/{org}/pause", token=world.owner)
    assert access() == (False, "paused")

    def seat(value: str) -> None:
        response = api.call(
            "PATCH", f"/orgs/{org}/members/{first}", token=world.manager, json={"seat": value}
        )
        assert response.status_code == 200, response.text

    seat("unlicensed")
    assert access() == (False, "unlicensed")
    seat("external")
    assert access() == (False, "external")
    removed = api.call("DELETE", f"/orgs/{org}/members/{first}", token=world.manager)
    assert removed.status_code == 200, removed.text
    assert access() == (False, "removed")

    # And back the other way for another member: resume and refill, and it is ok again.
    api.call("POST", f"/orgs/{org}/resume", token=world.owner)
    assert access(second) == (False, "no_credits")
    api.call("POST", f"/orgs/{org}/purchases", token=OPERATOR_KEY, json={"amount": "1"})
    assert access(second) == (True, "ok")
    assert _member(world, second)["access"] is True


def test_only_the_owner_brings_a_manager_back(world: World) -> None:
    api, org = world.api, world.org_id
    first = world.student_ids[0]
    promoted = api.call(
        "PATCH", f"/orgs/{org}/members/{first}", token=world.owner, json={"role": "manager"}
    )
    assert promoted.status_code == 200, promoted.text
    api.call("DELETE", f"/orgs/{org}/members/{first}", token=world.owner)
    path = f"/orgs/{org}/members/{first}/restore"

    problem(api.call("POST", path, token=world.manager), 403, "forbidden")
    assert _member(world, first)["status"] == "removed"
    back = api.call("POST", path, token=world.owner)
    assert (back.status_code, back.json()["role"]) == (200, "manager")
