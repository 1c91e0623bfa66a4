"""Budgets per period over HTTP: the settings, the member's figures, and reads that settle a
passed boundary themselves, with no worker running. The clock starts on Thursday 1 January
2026, 00:00 UTC; a weekly period in UTC ends on Monday 5 January, 00:00."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI

from tests.api.support import OPERATOR_KEY, Api, problem, signed_in_browser
from tests.support.clock import FakeClock

MONDAY = datetime(2026, 1, 5, tzinfo=UTC)
WEEKLY = {
    "auto_allocation": {
        "enabled": True,
        "bundle": "5",
        "max_per_member": "10",
        "period": "week",
        "reclaim": True,
    }
}


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


@dataclass
class WeeklyClass:
    """An org with a weekly budget, its owner, one student and the farm's usage key."""

    api: Api
    org_id: str
    owner: str
    student: str
    student_email: str
    student_id: str
    key: str

    def get(self, path: str, token: str) -> Any:
        response = self.api.call("GET", f"/orgs/{self.org_id}{path}", token=token)
        assert response.status_code == 200, response.text
        return response.json()

    def reclaims(self) -> list[str]:
        page = self.get("/transfers?kind=reclaim", self.owner)
        return [transfer["amount"] for transfer in page["items"]]


def weekly_class(api: Api) -> WeeklyClass:
    owner_user, owner = api.sign_up("Owner")
    org = api.call(
        "POST",
        "/orgs",
        token=OPERATOR_KEY,
        json={"name": "Weekly class", "owner_email": owner_user["email"]},
    ).json()
    org_id = org["id"]
    settings = api.call("PATCH", f"/orgs/{org_id}/settings", token=owner, json=WEEKLY)
    assert settings.status_code == 200, settings.text
    assert settings.json()["auto_allocation"]["period"] == "week"
    api.call("POST", f"/orgs/{org_id}/purchases", token=OPERATOR_KEY, json={"amount": "100"})
    student_user, student = api.sign_up("Student")
    joined = api.call("POST", f"/join/{org['invite_code']}", token=student)
    assert joined.status_code == 201, joined.text
    key = api.call(
        "POST", f"/orgs/{org_id}/api-keys", token=owner, json={"name": "farm", "scopes": ["usage"]}
    ).json()["key"]
    return WeeklyClass(api, org_id, owner, student, student_user["email"], joined.json()["id"], key)


def test_the_member_shows_its_week_and_the_farm_is_refused_past_the_cap(api: Api) -> None:
    school = weekly_class(api)
    member = school.get(f"/members/{school.student_id}", school.student)
    assert member["auto_allocated_this_period"] == "0"
    assert instant(member["period_ends_at"]) == MONDAY
    path = f"/orgs/{school.org_id}/members/{school.student_id}/usage"
    charged = api.call("POST", path, token=school.key, json={"amount": "7"})
    assert charged.status_code == 201, charged.text
    after = charged.json()["member"]
    assert (after["credits_available"], after["auto_allocated_this_period"]) == ("3", "10")
    refused = problem(
        api.call("POST", path, token=school.key, json={"amount": "4"}), 409, "insufficient_credits"
    )
    assert "this week" in refused["detail"]


@pytest.mark.parametrize(
    "first_read", ["org", "org_list", "balance", "member", "members", "me_page"]
)
def test_the_first_read_after_a_boundary_shows_it_settled_without_the_worker(
    api: Api, app: FastAPI, clock: FakeClock, first_read: str
) -> None:
    school = weekly_class(api)
    path = f"/orgs/{school.org_id}/members/{school.student_id}/usage"
    charged = api.call("POST", path, token=school.key, json={"amount": "1"})
    assert charged.json()["member"]["credits_available"] == "4"  # a bundle of 5, 1 used
    clock.current = MONDAY + timedelta(hours=1)
    # Signing in reads no org: the page is still the first read of the class.
    browser = signed_in_browser(app, school.student_email) if first_read == "me_page" else None

    # Whichever read comes first after the boundary sees the 4 left back in the pool.
    if first_read == "org":
        assert school.get("", school.owner)["balance"]["available"] == "99"
    elif first_read == "org_list":
        listed = api.call("GET", "/orgs", token=school.owner).json()["items"]
        (org,) = [org for org in listed if org["id"] == school.org_id]
        assert org["balance"]["available"] == "99"
    elif first_read == "balance":
        assert school.get("/balance", school.key)["available"] == "99"
    elif first_read == "member":
        member = school.get(f"/members/{school.student_id}", school.student)
        assert (member["credits_available"], member["auto_allocated_this_period"]) == ("0", "0")
        assert instant(member["period_ends_at"]) == MONDAY + timedelta(days=7)
    elif first_read == "members":
        listed = school.get("/members", school.owner)["items"]
        (student,) = [m for m in listed if m["id"] == school.student_id]
        assert (student["credits_available"], student["auto_allocated_this_period"]) == ("0", "0")
    else:
        assert browser is not None
        page = browser.get("/me")
        assert page.status_code == 200
        assert 'data-figure="available">0<' in page.text
        assert "reclaim" in page.text  # the history shows the credits going back

    assert school.reclaims() == ["4"]
    assert school.get("/balance", school.key)["available"] == "99"


def test_bad_settings_are_refused_and_change_nothing(api: Api) -> None:
    school = weekly_class(api)
    path = f"/orgs/{school.org_id}/settings"
    unknown_zone = {"timezone": "Mars/Olympus", "auto_allocation": {"period": "month"}}
    body = problem(
        api.call("PATCH", path, token=school.owner, json=unknown_zone), 422, "validation_error"
    )
    assert "Mars/Olympus" in body["detail"]
    fortnight = {"timezone": "Europe/Paris", "auto_allocation": {"period": "fortnight"}}
    problem(api.call("PATCH", path, token=school.owner, json=fortnight), 422, "validation_error")
    not_a_bool = {"auto_allocation": {"reclaim": "yes"}}
    problem(api.call("PATCH", path, token=school.owner, json=not_a_bool), 422, "validation_error")
    settings = school.get("", school.owner)["settings"]
    assert (settings["timezone"], settings["auto_allocation"]["period"]) == ("UTC", "week")
    assert settings["auto_allocation"]["reclaim"] is True

    # A good zone starts the week again from its Monday midnight: 23:00 UTC the day before.
    paris = api.call("PATCH", path, token=school.owner, json={"timezone": "Europe/Paris"})
    assert paris.status_code == 200, paris.text
    assert paris.json()["timezone"] == "Europe/Paris"
    member = school.get(f"/members/{school.student_id}", school.student)
    assert instant(member["period_ends_at"]) == MONDAY - timedelta(hours=1)
    # Only the owner sets them.
    manager_patch = api.call("PATCH", path, token=school.student, json={"timezone": "UTC"})
    problem(manager_patch, 403, "forbidden")


@pytest.mark.parametrize("first_read", ["parent", "children", "org_list"])
def test_a_parents_first_read_after_a_childs_boundary_shows_the_child_settled(
    api: Api, clock: FakeClock, first_read: str
) -> None:
    # The weekly class is a child of a district: the district's roll-up and its list of
    # children read the class's figures, so they settle its boundary as a read of it would.
    district_owner_user, district_owner = api.sign_up("District owner")
    district = api.call(
        "POST",
        "/orgs",
        token=OPERATOR_KEY,
        json={"name": "District", "owner_email": district_owner_user["email"]},
    ).json()
    owner_user, owner = api.sign_up("Class owner")
    made = api.call(
        "POST",
        f"/orgs/{district['id']}/children",
        token=district_owner,
        json={"name": "Weekly class", "owner_email": owner_user["email"]},
    )
    assert made.status_code == 201, made.text
    child = made.json()["id"]
    assert api.call("PATCH", f"/orgs/{child}/settings", token=owner, json=WEEKLY).status_code == 200
    api.call("POST", f"/orgs/{child}/purchases", token=OPERATOR_KEY, json={"amount": "100"})
    _, student = api.sign_up("Student")
    joined = api.call("POST", f"/join/{made.json()['invite_code']}", token=student).json()
    key = api.call(
        "POST", f"/orgs/{child}/api-keys", token=owner, json={"name": "farm", "scopes": ["usage"]}
    ).json()["key"]
    path = f"/orgs/{child}/members/{joined['id']}/usage"
    assert api.call("POST", path, token=key, json={"amount": "1"}).status_code == 201
    clock.current = MONDAY + timedelta(hours=1)

    # Nobody reads the class itself: the district's read comes first and sees its 4 back.
    if first_read == "parent":
        rollup = api.call("GET", f"/orgs/{district['id']}", token=district_owner).json()["rollup"]
        assert (rollup["available"], rollup["allocated"]) == ("99", "0")
    elif first_read == "children":
        (listed,) = api.call(
            "GET", f"/orgs/{district['id']}/children", token=district_owner
        ).json()["items"]
        assert (listed["balance"]["available"], listed["balance"]["allocated"]) == ("99", "0")
    else:
        listed = api.call("GET", "/orgs", token=district_owner).json()["items"]
        (org,) = [org for org in listed if org["id"] == district["id"]]
        assert org["rollup"]["available"] == "99"

    reclaimed = api.call("GET", f"/orgs/{child}/transfers?kind=reclaim", token=owner).json()
    assert [transfer["amount"] for transfer in reclaimed["items"]] == ["4"]
