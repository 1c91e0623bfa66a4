"""Every list is bounded: invitations, groups and API keys come in pages; an allocation's
idempotency record keeps its batch id and total, not its members."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from creditpool.storage.schema import IdempotencyRecord
from creditpool.storage.unit_of_work import UnitOfWork
from tests.api.support import Api, World, problem
from tests.support.clock import FakeClock


def _walk(api: Api, path: str, token: str, **params: Any) -> list[list[dict[str, Any]]]:
    """Every page of a list, following `next_cursor` to its end."""
    pages: list[list[dict[str, Any]]] = []
    cursor = None
    while True:
        query = params | ({"cursor": cursor} if cursor else {})
        response = api.call("GET", path, token=token, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"items", "next_cursor"}
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 20, "the cursor never ends"


def test_invitations_come_in_pages_newest_first_of_one_status(
    world: World, clock: FakeClock
) -> None:
    api, org = world.api, world.org_id
    path = f"/orgs/{org}/invitations"
    old = api.call("POST", path, token=world.owner, json={"emails": ["old@example.test"]})
    clock.advance(days=15)  # its fortnight is over: expired
    emails = [f"invitee{number}@example.test" for number in range(5)]
    made = api.call("POST", path, token=world.owner, json={"emails": emails}).json()["items"]
    revoked = made[0]["id"]
    assert api.call("DELETE", f"{path}/{revoked}", token=world.owner).status_code == 204

    pages = _walk(api, path, world.manager, limit=2)
    assert [len(page) for page in pages] == [2, 2, 2]
    listed = [item for page in pages for item in page]
    newest_first = [item["id"] for item in reversed(made)] + [old.json()["items"][0]["id"]]
    assert [item["id"] for item in listed] == newest_first
    assert set(listed[0]) == {"id", "email", "role", "seat", "status", "created_at"}

    def ids(status: str) -> list[str]:
        pages = _walk(api, path, world.owner, limit=2, status=status)
        return [item["id"] for page in pages for item in page]

    assert ids("pending") == [item["id"] for item in reversed(made[1:])]
    assert ids("revoked") == [revoked]
    assert ids("expired") == [old.json()["items"][0]["id"]]
    problem(
        api.call("GET", path, token=world.owner, params={"limit": 501}), 422, "validation_error"
    )


def test_groups_come_in_pages_by_name(world: World) -> None:
    api, org = world.api, world.org_id
    path = f"/orgs/{org}/groups"
    names = ["Wednesday", "Monday", "Friday", "Tuesday", "Thursday"]
    for name in names:
        assert api.call("POST", path, token=world.manager, json={"name": name}).status_code == 201
    pages = _walk(api, path, world.usage_key, limit=2)
    assert [len(page) for page in pages] == [2, 2, 1]
    listed = [item for page in pages for item in page]
    assert [item["name"] for item in listed] == sorted(names)
    assert set(listed[0]) == {"id", "name", "member_count"}
    whole = api.call("GET", path, token=world.owner).json()
    assert (len(whole["items"]), whole["next_cursor"]) == (5, None)


def test_api_keys_come_in_pages_oldest_first(world: World) -> None:
    api, org = world.api, world.org_id
    path = f"/orgs/{org}/api-keys"
    for number in range(4):
        made = api.call(
            "POST", path, token=world.owner, json={"name": f"farm {number}", "scopes": ["usage"]}
        )
        assert made.status_code == 201, made.text
    pages = _walk(api, path, world.owner, limit=3)
    assert [len(page) for page in pages] == [3, 2]
    listed = [item for page in pages for item in page]
    assert [item["name"] for item in listed] == ["farm", "farm 0", "farm 1", "farm 2", "farm 3"]
    assert set(listed[0]) == {"id", "name", "scopes", "created_at", "last_used_at"}


def test_a_replayed_allocation_answers_the_same_batch_from_a_small_record(
    world: World, app: FastAPI
) -> None:
    api, org = world.api, world.org_id
    code = world.org["invite_code"]
    for number in range(20):
        _, token = api.sign_up(f"Student {number + 3}")
        assert api.call("POST", f"/join/{code}", token=token).status_code == 201
    path = f"/orgs/{org}/allocations"
    body = {"member_ids": "all", "amount": "1"}

    first = api.call("POST", path, token=world.manager, json=body, key="allot-all")
    assert first.status_code == 201, first.text
    assert len(first.json()["members"]) == 22
    again = api.call("POST", path, token=world.manager, json=body, key="allot-all")
    assert again.status_code == 201, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert again.json() == first.json()  # nobody's wallet moved in between
    balance = api.call("GET", f"/orgs/{org}/balance", token=world.owner).json()
    assert balance["allocated"] == "22"  # allotted once

    uow = UnitOfWork(app.state.session_factory, app.state.clock)
    with uow:
        record = uow.session.get(IdempotencyRecord, (org, f"user:{_user_id(world)}", "allot-all"))
        assert record is not None
        assert record.result == {"batch_id": first.json()["batch_id"], "total": 22_000_000}


def _user_id(world: World) -> str:
    me = world.api.call("GET", "/me", token=world.manager).json()
    return str(me["user"]["id"])
