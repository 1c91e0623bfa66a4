"""A family of orgs on the pages, in process: the parent's class manager lists its children with
their figures and moves credits to and from each; a child's page says where its credits come
from; the operator's console shows the tree. The world's org (100 credits) is the parent."""

from __future__ import annotations

import html
import re

import httpx2 as httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from creditpool.domain.amounts import parse_credits
from creditpool.domain.errors import InsufficientCredits
from creditpool.domain.policies import SettingsChange
from creditpool.services import families, users
from creditpool.storage.unit_of_work import UnitOfWork
from tests.api.support import PASSWORD, Api, World, csrf_of, signed_in_browser

YEAR_OF_DAYS = "365"  # credits a year per licensed seat: one credit a day


def _signed_in(app: FastAPI, world: World, token: str) -> TestClient:
    """A browser-like client (its own cookies) signed in as the holder of `token`."""
    email = world.api.call("GET", "/me", token=token).json()["user"]["email"]
    return signed_in_browser(app, email)


def _uow(app: FastAPI) -> UnitOfWork:
    """A unit of work on the application's database (inside the test's transaction)."""
    return UnitOfWork(app.state.session_factory, app.state.clock)


def _child(
    app: FastAPI,
    world: World,
    name: str,
    *,
    parent: str | None = None,
    owner_token: str | None = None,
    settings: SettingsChange | None = None,
) -> tuple[str, str]:
    """Open a child org of the world's org (or of `parent`) for a new person (or the holder of
    `owner_token`); return its id and its owner's token."""
    if owner_token is None:
        owner_token = world.api.sign_up(f"Owner of {name}")[1]
    owner = world.api.call("GET", "/me", token=owner_token).json()["user"]
    made = families.create_child(
        _uow(app),
        parent or world.org_id,
        name=name,
        owner_user_id=owner["id"],
        settings=settings,
        actor="operator-key:test",
    )
    return made.id, owner_token


def _children(app: FastAPI, world: World) -> list[str]:
    return [child.name for child in families.list_children(_uow(app), world.org_id)]


def _page(client: TestClient, org: str) -> str:
    page = client.get(f"/orgs/{org}")
    assert page.status_code == 200, page.text
    return page.text


def _row(page: str, child: str) -> str:
    """The children table's row of one child."""
    found = re.search(rf'<tr id="child-{child}".*?</tr>', page, re.S)
    assert found is not None, "no row for that child"
    return found.group(0)


def _figures(markup: str) -> dict[str, str]:
    """The figures (`data-figure`) in a piece of a page, by name, as shown."""
    found = re.findall(r'data-figure="([^"]+)">(.*?)</t[dh]>', markup, re.S)
    return {name: re.sub(r"<[^>]+>", "", text).strip() for name, text in found}


def _figures_in_order(row: str) -> list[str]:
    """A row's cells, as shown, in order (empty ones left out)."""
    cells = re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)
    return [text for text in (re.sub(r"<[^>]+>", "", cell).strip() for cell in cells) if text]


def _pool_available(page: str) -> str:
    found = re.search(r'<dd data-figure="available">([^<]+)</dd>', page)
    assert found is not None
    return found.group(1)


def _post(client: TestClient, path: str, page: str, **fields: str) -> httpx.Response:
    form = {"csrf_token": csrf_of(page), **fields}
    return client.post(path, data=form, follow_redirects=False)


def _join(world: World, org: str, owner_token: str) -> str:
    """A new person joins the org by its invite code; return their token."""
    code = world.api.call("GET", f"/orgs/{org}", token=owner_token).json()["invite_code"]
    token = world.api.sign_up("Student")[1]
    joined = world.api.call("POST", f"/join/{code}", token=token)
    assert joined.status_code == 201, joined.text
    return token


def _email(world: World, token: str) -> str:
    return str(world.api.call("GET", "/me", token=token).json()["user"]["email"])


def _available(world: World, org: str, token: str) -> str:
    return str(world.api.call("GET", f"/orgs/{org}", token=token).json()["balance"]["available"])


def test_the_parent_page_lists_its_children_by_name_with_their_figures(
    app: FastAPI, world: World
) -> None:
    metered = SettingsChange(rate_licensed=parse_credits(YEAR_OF_DAYS), rate_unlicensed=0)
    west, _ = _child(app, world, "Westside school", settings=metered)
    east, east_owner = _child(app, world, "Eastside school")
    _join(world, east, east_owner)  # a student: two members in Eastside
    owner = _signed_in(app, world, world.owner)
    page = _page(owner, world.org_id)

    allotted = _post(owner, f"/orgs/{world.org_id}/children/{west}/allocations", page, amount="10")
    assert allotted.status_code == 303, allotted.text
    assert allotted.headers["location"] == f"/orgs/{world.org_id}#child-{west}"
    page = owner.get(allotted.headers["location"]).text
    assert "Allotted 10 credits to Westside school." in page

    assert re.findall(r'<tr id="child-[^"]+" data-child="([^"]+)"', page) == [
        "Eastside school",
        "Westside school",
    ]
    assert _figures(_row(page, west)) == {
        "members": "1",
        "available": "10",
        "allocated": "0",
        "used": "0",
        "burn": "1",  # its owner's licensed seat, 365 credits a year
        "runs-out": "2026-01-11",  # ten credits at one a day, from the clock's 2026-01-01
    }
    assert _figures(_row(page, east)) == {
        "members": "2",
        "available": "0",
        "allocated": "0",
        "used": "0",
        "burn": "0",
        "runs-out": "never at this rate",
    }
    assert _pool_available(page) == "90"
    assert _available(world, west, world.owner) == "10"
    totals = re.search(r"<tr data-children-total>.*?</tr>", page, re.S)
    assert totals is not None
    assert _figures_in_order(totals.group(0)) == ["All 2 together", "3", "10", "0", "0", "1"]
    # Taking back says what an empty amount does, in every row.
    assert page.count('placeholder="all available if empty"') == 2


def test_taking_back_with_no_amount_takes_all_the_child_has_available(
    app: FastAPI, world: World
) -> None:
    school, _ = _child(app, world, "Westside school")
    owner = _signed_in(app, world, world.owner)
    page = _page(owner, world.org_id)
    _post(owner, f"/orgs/{world.org_id}/children/{school}/allocations", page, amount="40")

    page = _page(owner, world.org_id)
    some = _post(owner, f"/orgs/{world.org_id}/children/{school}/revocations", page, amount="15")
    assert some.status_code == 303, some.text
    page = owner.get(some.headers["location"]).text
    assert "Took back 15 credits from Westside school." in page
    assert _figures(_row(page, school))["available"] == "25"

    rest = _post(owner, f"/orgs/{world.org_id}/children/{school}/revocations", page, amount="")
    assert rest.status_code == 303, rest.text
    page = owner.get(rest.headers["location"]).text
    assert "Took back 25 credits from Westside school." in page
    assert _figures(_row(page, school))["available"] == "0"
    assert _pool_available(page) == "100"


def test_allotting_more_than_the_pool_has_says_why_beside_the_child_and_changes_nothing(
    app: FastAPI, world: World
) -> None:
    school, school_owner = _child(app, world, "Westside school")
    owner = _signed_in(app, world, world.owner)
    page = _page(owner, world.org_id)
    refused = _post(
        owner, f"/orgs/{world.org_id}/children/{school}/allocations", page, amount="100.5"
    )
    assert refused.status_code == 409, refused.text
    # The same reason the API gives, in the child's row.
    with pytest.raises(InsufficientCredits) as said:
        families.allot_to_child(
            _uow(app), world.org_id, school, parse_credits("100.5"), actor="operator-key:test"
        )
    row = _row(refused.text, school)
    assert f'<p class="error" role="alert">{html.escape(said.value.detail)}</p>' in row
    assert _figures(row)["available"] == "0"
    assert _available(world, world.org_id, world.owner) == "100"
    assert _available(world, school, school_owner) == "0"

    typo = _post(owner, f"/orgs/{world.org_id}/children/{school}/allocations", page, amount="ten")
    assert typo.status_code == 422
    assert 'role="alert"' in _row(typo.text, school)
    empty = _post(owner, f"/orgs/{world.org_id}/children/{school}/allocations", page, amount="")
    assert empty.status_code == 422
    assert "fill in the amount" in _row(empty.text, school)
    assert _available(world, world.org_id, world.owner) == "100"


def test_a_child_that_keeps_its_credits_refuses_to_give_them_back_and_says_so(
    app: FastAPI, world: World
) -> None:
    keeps = SettingsChange(returnable=False)
    school, school_owner = _child(app, world, "Westside school", settings=keeps)
    owner = _signed_in(app, world, world.owner)
    page = _page(owner, world.org_id)
    _post(owner, f"/orgs/{world.org_id}/children/{school}/allocations", page, amount="20")

    page = _page(owner, world.org_id)
    refused = _post(owner, f"/orgs/{world.org_id}/children/{school}/revocations", page)
    assert refused.status_code == 409, refused.text
    row = _row(refused.text, school)
    said = "Westside school does not let credits go back from its pool"
    assert f'<p class="error" role="alert">{said}</p>' in row
    assert _figures(row)["available"] == "20"
    assert _available(world, world.org_id, world.owner) == "80"
    assert _available(world, school, school_owner) == "20"


def test_the_forms_carry_the_session_csrf_token_and_refuse_without_it(
    app: FastAPI, world: World
) -> None:
    school, _ = _child(app, world, "Westside school")
    owner = _signed_in(app, world, world.owner)
    page = _page(owner, world.org_id)
    token = csrf_of(page)
    forms = re.findall(
        r'<form method="post" action="(/orgs/[^"]+/children[^"]*)"(.*?)</form>', page, re.S
    )
    assert {action for action, _ in forms} == {
        f"/orgs/{world.org_id}/children/{school}/allocations",
        f"/orgs/{world.org_id}/children/{school}/revocations",
        f"/orgs/{world.org_id}/children",
    }
    assert all(f'name="csrf_token" value="{token}"' in body for _, body in forms)

    for action, _ in forms[:2]:
        refused = owner.post(action, data={"amount": "5"}, follow_redirects=False)
        assert refused.status_code == 403
        assert "This form has expired" in refused.text
    assert _available(world, world.org_id, world.owner) == "100"


def test_a_manager_sees_the_table_but_only_the_owner_adds_a_child(
    app: FastAPI, world: World
) -> None:
    school, _ = _child(app, world, "Westside school")
    manager = _signed_in(app, world, world.manager)
    page = _page(manager, world.org_id)
    assert f'<tr id="child-{school}"' in page
    assert "Add a child org" not in page
    moved = _post(manager, f"/orgs/{world.org_id}/children/{school}/allocations", page, amount="5")
    assert moved.status_code == 303, moved.text

    refused = _post(
        manager,
        f"/orgs/{world.org_id}/children",
        page,
        name="Sly school",
        owner_email="x@example.test",
    )
    assert refused.status_code == 403
    assert _children(app, world) == ["Westside school"]


def test_no_one_in_a_child_gets_the_parents_table(app: FastAPI, world: World) -> None:
    school, school_owner = _child(app, world, "Westside school")
    student = _signed_in(app, world, _join(world, school, school_owner))
    own = student.get(f"/orgs/{school}")
    assert own.status_code == 403
    assert 'id="children"' not in own.text
    parents = student.get(f"/orgs/{world.org_id}")
    assert parents.status_code == 404
    assert 'id="children"' not in parents.text

    # The child's owner runs the child, not its parent.
    head = _signed_in(app, world, school_owner)
    assert head.get(f"/orgs/{world.org_id}").status_code == 404
    own_page = _page(head, school)
    assert '<table class="children">' not in own_page  # a school without classes yet
    assert f'action="/orgs/{world.org_id}/children' not in own_page


def test_a_child_page_says_where_its_credits_come_from(app: FastAPI, world: World) -> None:
    school, school_owner = _child(app, world, "Westside school")
    owner = _signed_in(app, world, world.owner)
    page = _page(owner, world.org_id)
    _post(owner, f"/orgs/{world.org_id}/children/{school}/allocations", page, amount="40")
    page = _page(owner, world.org_id)
    _post(owner, f"/orgs/{world.org_id}/children/{school}/revocations", page, amount="12.5")

    child_page = _page(_signed_in(app, world, school_owner), school)
    assert "Credits from Render class" in child_page
    source = child_page.split('id="family-source"')[1].split("</section>")[0]
    assert re.search(r'data-figure="received">40<', source)
    assert re.search(r'data-figure="given-back">12.5<', source)
    assert _pool_available(child_page) == "27.5"
    # Its owner has no standing in the parent: no link there.
    assert f'href="/orgs/{world.org_id}"' not in child_page

    # The top of a family says nothing of a source.
    assert 'id="family-source"' not in page


def test_the_owner_adds_a_child_from_the_page_vouching_for_an_unconfirmed_owner(
    app: FastAPI, world: World
) -> None:
    principal, _ = world.api.sign_up("Principal")
    owner = _signed_in(app, world, world.owner)
    page = _page(owner, world.org_id)

    unknown = _post(
        owner,
        f"/orgs/{world.org_id}/children",
        page,
        name="Northside school",
        owner_email="nobody@example.test",
    )
    assert unknown.status_code == 422
    assert "they sign up first" in unknown.text
    assert 'value="Northside school"' in unknown.text  # kept as typed

    asked = _post(
        owner,
        f"/orgs/{world.org_id}/children",
        page,
        name="Northside school",
        owner_email=principal["email"],
    )
    assert asked.status_code == 200
    assert f"{principal['email']} has not confirmed this e-mail address yet" in asked.text
    assert _children(app, world) == []

    made = _post(
        owner,
        f"/orgs/{world.org_id}/children",
        page,
        name="Northside school",
        owner_email=principal["email"],
        owner_unconfirmed_ok="on",
    )
    assert made.status_code == 303, made.text
    page = owner.get(made.headers["location"]).text
    assert f"Added Northside school, owned by {principal['email']}." in page
    assert re.findall(r'data-child="([^"]+)"', page) == ["Northside school"]


def test_a_class_page_offers_no_child_of_its_own(app: FastAPI, world: World) -> None:
    school, school_owner = _child(app, world, "Westside school")
    made, _ = _child(app, world, "Class 3B", parent=school, owner_token=school_owner)
    head = _signed_in(app, world, school_owner)
    school_page = _page(head, school)
    assert re.findall(r'data-child="([^"]+)"', school_page) == ["Class 3B"]
    assert "Add a child org" in school_page
    class_page = _page(head, made)
    assert "Add a child org" not in class_page  # a fourth level is refused
    # The school's owner runs the school too: the class page links there.
    assert f'Credits from <a href="/orgs/{school}">Westside school</a>' in class_page
    assert "part of Render class \u203a Westside school" in class_page


def test_the_operator_console_shows_each_family_as_a_tree(
    app: FastAPI, api: Api, world: World
) -> None:
    _child(app, world, "Eastside school")
    west, west_owner = _child(app, world, "Westside school")
    _child(app, world, "Class 3B", parent=west, owner_token=west_owner)
    paused = api.call("POST", f"/orgs/{west}/pause", token=west_owner)
    assert paused.status_code == 200, paused.text

    vera = {"email": "vera@vendor.test", "password": PASSWORD, "name": "Vera"}
    assert api.call("POST", "/users", json=vera).status_code == 201
    users.grant_operator(_uow(app), vera["email"])
    console = signed_in_browser(app, vera["email"]).get("/operator").text
    rows = re.findall(
        r'<tr data-org="([^"]+)">\s*<th scope="row" class="tree depth-(\d)"(.*?)</th>',
        console,
        re.S,
    )
    order = [(name, int(depth)) for name, depth, _ in rows]
    family = order[order.index(("Render class", 1)) :][:4]
    assert family == [
        ("Render class", 1),
        ("Eastside school", 2),
        ("Westside school", 2),
        ("Class 3B", 3),
    ]
    assert ("Other class", 1) in order
    marks = {name: body for name, _, body in rows}
    assert ">paused</span>" in marks["Westside school"]
    assert ">paused with its parent</span>" in marks["Class 3B"]
    assert "paused" not in marks["Eastside school"]
    assert "paused" not in marks["Render class"]
