"""The class manager page, in process: who is offered which role in the invitation form, and
the bounded sections (invitations, groups, keys) saying how many more there are."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from creditpool.web import pages_org
from tests.api.support import World, csrf_of, signed_in_browser


def _signed_in(app: FastAPI, world: World, token: str) -> TestClient:
    """A browser-like client (its own cookies) signed in as the holder of `token`."""
    email = world.api.call("GET", "/me", token=token).json()["user"]["email"]
    return signed_in_browser(app, email)


def _page(client: TestClient, world: World) -> str:
    page = client.get(f"/orgs/{world.org_id}")
    assert page.status_code == 200, page.text
    return page.text


def _invite(client: TestClient, world: World, **fields: Any) -> Any:
    form = {"csrf_token": csrf_of(_page(client, world)), **fields}
    return client.post(f"/orgs/{world.org_id}/invitations", data=form, follow_redirects=False)


def _invitations(world: World) -> list[tuple[str, str]]:
    listed = world.api.call("GET", f"/orgs/{world.org_id}/invitations", token=world.owner)
    return [(item["email"], item["role"]) for item in listed.json()["items"]]


def test_a_manager_is_not_offered_the_manager_role_and_is_refused_it(
    app: FastAPI, world: World
) -> None:
    manager = _signed_in(app, world, world.manager)
    assert 'name="role"' not in _page(manager, world).split('id="members"')[0]

    refused = _invite(manager, world, emails="forged@example.test", role="manager")
    assert refused.status_code == 403
    assert "only the owner or an operator may invite a manager" in refused.text
    assert _invitations(world) == []  # nothing made, nothing sent

    invited = _invite(manager, world, emails="student@example.test")
    assert invited.status_code == 303, invited.text
    assert _invitations(world) == [("student@example.test", "member")]


def test_the_owner_may_invite_a_manager_from_the_page(app: FastAPI, world: World) -> None:
    owner = _signed_in(app, world, world.owner)
    invite_section = _page(owner, world).split('id="members"')[0]
    assert '<option value="manager">manager</option>' in invite_section
    invited = _invite(owner, world, emails="teacher@example.test", role="manager")
    assert invited.status_code == 303, invited.text
    assert _invitations(world) == [("teacher@example.test", "manager")]


def test_the_page_shows_a_bounded_number_and_says_how_many_more(
    app: FastAPI, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    api, org = world.api, world.org_id
    monkeypatch.setattr(pages_org, "SHOWN", 3)  # 200 on the real page; 3 keeps the test short
    emails = [f"invitee{number}@example.test" for number in range(5)]
    api.call("POST", f"/orgs/{org}/invitations", token=world.owner, json={"emails": emails})
    for name in ("Alpha", "Bravo", "Charlie", "Delta"):
        made = api.call("POST", f"/orgs/{org}/groups", token=world.owner, json={"name": name})
    students = {"member_ids": world.student_ids[:1]}
    api.call(
        "PUT", f"/orgs/{org}/groups/{made.json()['id']}/members", token=world.owner, json=students
    )
    for number in range(3):  # with the world's own key: 4
        api.call(
            "POST",
            f"/orgs/{org}/api-keys",
            token=world.owner,
            json={"name": f"farm {number}", "scopes": ["usage"]},
        )

    page = _page(_signed_in(app, world, world.owner), world)
    shown = re.findall(r"Revoke the invitation to (\S+)\"", page)
    assert shown == ["invitee4@example.test", "invitee3@example.test", "invitee2@example.test"]
    assert "The newest 3 are shown; 2 more pending." in page
    assert "The first 3 groups by name are shown; 1 more." in page
    assert "<summary>Delta" not in page
    assert '<span class="tag">Delta</span>' in page  # a student's group, named though not listed
    assert re.findall(r'aria-label="Revoke key ([^"]+)"', page) == ["farm 2", "farm 1", "farm 0"]
    assert "The newest 3 keys are shown; 1 more." in page

    # A full list says nothing more.
    monkeypatch.setattr(pages_org, "SHOWN", 200)
    page = _page(_signed_in(app, world, world.owner), world)
    assert "more pending" not in page
    assert "groups by name are shown" not in page
    assert "<summary>Delta" in page


def test_a_manager_is_not_offered_to_remove_or_bring_back_a_manager(
    app: FastAPI, world: World
) -> None:
    api, org = world.api, world.org_id
    promoted, student = world.student_ids
    api.call(
        "PATCH", f"/orgs/{org}/members/{promoted}", token=world.owner, json={"role": "manager"}
    )
    manager = _signed_in(app, world, world.manager)
    page = _page(manager, world)
    assert 'aria-label="Remove Student 1"' not in page  # a manager now
    assert 'aria-label="Remove Manager"' not in page
    assert 'aria-label="Remove Student 2"' in page

    form = {"csrf_token": csrf_of(page)}
    refused = manager.post(f"/orgs/{org}/members/{promoted}/remove", data=form)
    assert refused.status_code == 403
    assert "only the owner or an operator may remove a manager" in refused.text
    listed = api.call("GET", f"/orgs/{org}/members/{promoted}", token=world.owner).json()
    assert (listed["status"], listed["role"]) == ("active", "manager")

    api.call("DELETE", f"/orgs/{org}/members/{promoted}", token=world.owner)
    api.call("DELETE", f"/orgs/{org}/members/{student}", token=world.owner)
    page = _page(manager, world)
    assert 'aria-label="Bring Student 1 back"' not in page
    assert 'aria-label="Bring Student 2 back"' in page
    owners_page = _page(_signed_in(app, world, world.owner), world)
    assert 'aria-label="Bring Student 1 back"' in owners_page
