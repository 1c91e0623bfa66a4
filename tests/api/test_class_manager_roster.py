"""The class manager's members table, in process: its address is its state (search, filters,
order, page) and bad values of it are refused with a 4xx, never a 500; a class that fits on
one page shows no pager; "every matching member" acts on the filter its form's address names,
and an action brings the person back to the same view."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.api.support import World, csrf_of, signed_in_browser


def _owner(app: FastAPI, world: World) -> TestClient:
    email = world.api.call("GET", "/me", token=world.owner).json()["user"]["email"]
    return signed_in_browser(app, email)


@pytest.mark.parametrize(
    "query",
    [
        "page=0",
        "page=abc",
        "page=99999999",
        "sort=balance",
        "sort=metric:",
        "seat=gold",
        "role=admin",
        "status=gone",
        "group=grp_nope",
        "q=" + "x" * 201,
    ],
)
def test_a_bad_table_address_is_refused_not_crashed(app: FastAPI, world: World, query: str) -> None:
    page = _owner(app, world).get(f"/orgs/{world.org_id}?{query}")
    assert 400 <= page.status_code < 500, (query, page.status_code)


def test_a_small_class_shows_every_member_and_no_pager_or_filters(
    app: FastAPI, world: World
) -> None:
    page = _owner(app, world).get(f"/orgs/{world.org_id}")
    assert page.status_code == 200
    assert page.text.count('name="member_ids" value=') == 4  # owner, manager, 2 students
    assert 'aria-label="Pages of members"' not in page.text
    assert 'role="search"' not in page.text
    assert "every_matching" not in page.text  # all of them are on the page already


def test_every_matching_member_is_the_filter_of_the_forms_address(
    app: FastAPI, world: World
) -> None:
    owner = _owner(app, world)
    view = "role=member&sort=name&order=desc"
    page = owner.get(f"/orgs/{world.org_id}?{view}")
    assert page.status_code == 200
    assert f'action="/orgs/{world.org_id}/credits?{view.replace("&", "&amp;")}"' in page.text
    form = {"csrf_token": csrf_of(page.text), "target": "selected", "action": "allot"}

    stale = owner.post(
        f"/orgs/{world.org_id}/credits?{view}",
        data={**form, "amount": "3", "every_matching": "5"},
        follow_redirects=False,
    )
    assert stale.status_code == 409  # 2 match, not the 5 the form says it showed
    assert "2 members match now" in stale.text

    done = owner.post(
        f"/orgs/{world.org_id}/credits?{view}",
        data={**form, "amount": "3", "every_matching": "2"},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    assert done.headers["location"] == f"/orgs/{world.org_id}?{view}#members"
    balance = world.api.call("GET", f"/orgs/{world.org_id}/balance", token=world.owner).json()
    assert balance["allocated"] == "6"  # the two students, not the owner or the manager
    back = owner.get(done.headers["location"])
    assert re.search(r"Allotted 6 credits to 2 member\(s\)", back.text)
