"""Pools inside pools over HTTP, on both engines: the bodies and statuses of the contract.

`world.org` is the parent (100 credits, an owner, a manager, two students); its owner opens a
child and credits move between the two pools.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.support import OPERATOR_KEY, World, problem

BALANCE_KEYS = {
    "at",
    "available",
    "allocated",
    "purchased",
    "used",
    "metered",
    "burn_rate_per_day",
    "depletes_at",
    "expired",
    "expiring",
}
ROLLUP_KEYS = {"orgs", "members", "available", "allocated", "used", "metered", "usage"}


def open_child(world: World, parent_id: str, name: str = "Class 4B", **extra: Any) -> Any:
    user, _ = world.api.sign_up(f"Owner of {name}")
    return world.api.call(
        "POST",
        f"/orgs/{parent_id}/children",
        token=world.owner,
        json={"name": name, "owner_email": user["email"], **extra},
    )


@pytest.fixture
def child(world: World) -> dict[str, Any]:
    response = open_child(world, world.org_id)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_child_is_an_org_with_its_parent(world: World, child: dict[str, Any]) -> None:
    assert set(child) == {
        "id",
        "name",
        "paused",
        "invite_code",
        "settings",
        "balance",
        "usage",
        "created_at",
        "parent_id",
        "rollup",
    }
    assert (child["name"], child["parent_id"], child["paused"]) == ("Class 4B", world.org_id, False)
    assert child["balance"]["available"] == "0"
    assert child["rollup"] == {
        "orgs": 1,
        "members": 1,
        "available": "0",
        "allocated": "0",
        "used": "0",
        "metered": "0",
        "usage": {},
    }
    parent = world.api.call("GET", f"/orgs/{world.org_id}", token=world.owner).json()
    assert parent["parent_id"] is None
    assert (parent["rollup"]["orgs"], parent["rollup"]["members"]) == (2, 4 + 1)
    assert parent["rollup"]["available"] == "100"


def test_children_are_listed_for_the_owner_and_managers(
    world: World, child: dict[str, Any]
) -> None:
    second = open_child(world, world.org_id, "Class 1A").json()

    for token in (world.owner, world.manager, OPERATOR_KEY):
        listed = world.api.call("GET", f"/orgs/{world.org_id}/children", token=token)
        assert listed.status_code == 200, listed.text
        assert [c["id"] for c in listed.json()["items"]] == [second["id"], child["id"]]
        assert set(listed.json()["items"][0]["balance"]) >= BALANCE_KEYS
        assert set(listed.json()["items"][0]["rollup"]) == ROLLUP_KEYS

    first_page = world.api.call(
        "GET", f"/orgs/{world.org_id}/children", token=world.owner, params={"limit": 1}
    ).json()
    assert [c["id"] for c in first_page["items"]] == [second["id"]]
    rest = world.api.call(
        "GET",
        f"/orgs/{world.org_id}/children",
        token=world.owner,
        params={"limit": 1, "cursor": first_page["next_cursor"]},
    ).json()
    assert ([c["id"] for c in rest["items"]], rest["next_cursor"]) == ([child["id"]], None)

    problem(
        world.api.call("GET", f"/orgs/{world.org_id}/children", token=world.students[0]),
        403,
        "forbidden",
    )
    problem(
        world.api.call("GET", f"/orgs/{world.org_id}/children", token=world.usage_key),
        403,
        "forbidden",
    )


def test_only_the_owner_or_an_operator_opens_a_child(world: World) -> None:
    user, _ = world.api.sign_up("Someone")
    body = {"name": "Class", "owner_email": user["email"]}
    path = f"/orgs/{world.org_id}/children"

    problem(world.api.call("POST", path, token=world.manager, json=body), 403, "forbidden")
    problem(world.api.call("POST", path, token=world.stranger, json=body), 404, "not_found")
    by_operator = world.api.call("POST", path, token=OPERATOR_KEY, json=body)
    assert by_operator.status_code == 201, by_operator.text
    unknown = world.api.call(
        "POST", path, token=world.owner, json={"name": "X", "owner_email": "nobody@example.test"}
    )
    problem(unknown, 422, "validation_error")


def test_a_fourth_level_is_refused(world: World, child: dict[str, Any]) -> None:
    grandchild = world.api.call(
        "POST",
        f"/orgs/{child['id']}/children",
        token=OPERATOR_KEY,
        json={"name": "Group", "owner_email": world.api.sign_up()[0]["email"]},
    )
    assert grandchild.status_code == 201, grandchild.text
    assert grandchild.json()["parent_id"] == child["id"]

    fourth = world.api.call(
        "POST",
        f"/orgs/{grandchild.json()['id']}/children",
        token=OPERATOR_KEY,
        json={"name": "Too deep", "owner_email": world.api.sign_up()[0]["email"]},
    )
    problem(fourth, 422, "validation_error")


def test_allot_to_a_child_and_take_it_back(world: World, child: dict[str, Any]) -> None:
    path = f"/orgs/{world.org_id}/children/{child['id']}"

    allotted = world.api.call(
        "POST", f"{path}/allocations", token=world.manager, json={"amount": "30.5"}
    )
    assert allotted.status_code == 201, allotted.text
    body = allotted.json()
    assert set(body) == {"batch_id", "amount", "parent", "child"}
    assert set(body["parent"]) == set(body["child"]) == BALANCE_KEYS
    assert (body["amount"], body["parent"]["available"], body["child"]["available"]) == (
        "30.5",
        "69.5",
        "30.5",
    )
    # Both ledgers carry the move under the one batch id.
    out = world.api.call(
        "GET", f"/orgs/{world.org_id}/transfers", token=world.owner, params={"kind": "to_child"}
    ).json()["items"]
    came = world.api.call(
        "GET", f"/orgs/{child['id']}/transfers", token=OPERATOR_KEY, params={"kind": "from_parent"}
    ).json()["items"]
    assert [(t["batch_id"], t["amount"]) for t in out] == [(body["batch_id"], "30.5")]
    assert [(t["batch_id"], t["amount"]) for t in came] == [(body["batch_id"], "30.5")]

    some = world.api.call("POST", f"{path}/revocations", token=world.owner, json={"amount": "0.5"})
    assert some.status_code == 201, some.text
    assert (some.json()["amount"], some.json()["child"]["available"]) == ("0.5", "30")
    rest = world.api.call("POST", f"{path}/revocations", token=world.manager, json={})
    assert rest.status_code == 201, rest.text
    assert (rest.json()["amount"], rest.json()["parent"]["available"]) == ("30", "100")
    assert rest.json()["child"]["available"] == "0"


def test_refusals_move_nothing(world: World, child: dict[str, Any]) -> None:
    path = f"/orgs/{world.org_id}/children/{child['id']}"

    too_much = world.api.call(
        "POST", f"{path}/allocations", token=world.owner, json={"amount": "100.000001"}
    )
    problem(too_much, 409, "insufficient_credits")
    world.api.call("POST", f"{path}/allocations", token=world.owner, json={"amount": "10"})
    problem(
        world.api.call("POST", f"{path}/revocations", token=world.owner, json={"amount": "11"}),
        409,
        "insufficient_credits",
    )
    problem(
        world.api.call("POST", f"{path}/allocations", token=world.owner, json={"amount": "0"}),
        422,
        "invalid_amount",
    )
    problem(
        world.api.call(
            "POST", f"{path}/allocations", token=world.owner, json={"amount": "1", "x": 1}
        ),
        422,
        "validation_error",
    )
    # The child forbids returns: its owner's setting, not the parent's.
    settings = world.api.call(
        "PATCH", f"/orgs/{child['id']}/settings", token=OPERATOR_KEY, json={"returnable": False}
    )
    assert settings.status_code == 200, settings.text
    problem(
        world.api.call("POST", f"{path}/revocations", token=world.owner, json={}),
        409,
        "not_returnable",
    )
    parent = world.api.call("GET", f"/orgs/{world.org_id}/balance", token=world.owner).json()
    mine = world.api.call("GET", f"/orgs/{child['id']}/balance", token=OPERATOR_KEY).json()
    assert (parent["available"], mine["available"]) == ("90", "10")


def test_a_child_of_another_org_is_not_found(world: World, child: dict[str, Any]) -> None:
    other = world.other_org["id"]
    for path in (
        f"/orgs/{world.org_id}/children/{other}/allocations",
        f"/orgs/{world.org_id}/children/{other}/revocations",
        f"/orgs/{world.org_id}/children/no-such-org/allocations",
        f"/orgs/{world.org_id}/children/{world.org_id}/allocations",
    ):
        problem(
            world.api.call("POST", path, token=world.owner, json={"amount": "1"}),
            404,
            "not_found",
        )
    # The stranger owns the other org, not this family: it finds nothing here.
    problem(
        world.api.call(
            "POST",
            f"/orgs/{world.org_id}/children/{child['id']}/allocations",
            token=world.stranger,
            json={"amount": "1"},
        ),
        404,
        "not_found",
    )
    # Members and keys of the parent may not move credits.
    for token in (world.students[0], world.usage_key):
        problem(
            world.api.call(
                "POST",
                f"/orgs/{world.org_id}/children/{child['id']}/allocations",
                token=token,
                json={"amount": "1"},
            ),
            403,
            "forbidden",
        )


def test_an_idempotency_key_replays_the_first_answer(world: World, child: dict[str, Any]) -> None:
    path = f"/orgs/{world.org_id}/children/{child['id']}/allocations"

    first = world.api.call("POST", path, token=world.owner, json={"amount": "5"}, key="once")
    again = world.api.call("POST", path, token=world.owner, json={"amount": "5"}, key="once")
    other = world.api.call("POST", path, token=world.owner, json={"amount": "6"}, key="once")

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == first.json()
    problem(other, 422, "idempotency_mismatch")
    balance = world.api.call("GET", f"/orgs/{world.org_id}/balance", token=world.owner).json()
    assert balance["available"] == "95"

    user, _ = world.api.sign_up("Owner")
    create = {"name": "Class 9", "owner_email": user["email"]}
    made = world.api.call(
        "POST", f"/orgs/{world.org_id}/children", token=world.owner, json=create, key="c1"
    )
    remade = world.api.call(
        "POST", f"/orgs/{world.org_id}/children", token=world.owner, json=create, key="c1"
    )
    assert (made.status_code, remade.status_code) == (201, 201)
    assert remade.json()["id"] == made.json()["id"]
