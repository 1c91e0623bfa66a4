"""The export-credits story: a class whose students are topped up on demand, in bundles of 5 up
to a cap of 20 each, and whose credits may never go back to the pool."""

from __future__ import annotations

from typing import Any

import httpx2 as httpx
from playwright.sync_api import Dialog, Page, expect

from tests.support.server import Server
from tests.web.conftest import People, screenshot
from tests.web.steps import (
    invite_link,
    join_by_link,
    member_id,
    member_row,
    open_org,
    record_purchase,
    sign_in_operator,
    sign_up,
)

OWNER = "olivia@export.test"
STUDENT = "sam@export.test"


def expect_pool(page: Page, **figures: str) -> None:
    """The pool's figures at the top of the class manager."""
    for name, value in figures.items():
        expect(page.locator(f'#pool [data-figure="{name}"]')).to_have_text(value)


def expect_row(page: Page, email: str, figures: dict[str, str]) -> None:
    """One member's figures in its row of the class manager."""
    row = member_row(page, email)
    for name, value in figures.items():
        expect(row.locator(f'[data-figure="{name}"]')).to_have_text(value)


def expect_settings(page: Page, *, returnable: bool, auto: bool, bundle: str, cap: str) -> None:
    """What the settings form shows as saved."""
    settings = page.locator("#settings")
    going_back = settings.get_by_label("Credits may go back from members to the pool")
    expect(going_back).to_be_checked(checked=returnable)
    expect(settings.get_by_label("Top members up on demand")).to_be_checked(checked=auto)
    expect(settings.get_by_label("Bundle (credits)")).to_have_value(bundle)
    expect(settings.get_by_label("Cap per member")).to_have_value(cap)


def save_settings(page: Page, *, returnable: bool, auto: bool, bundle: str, cap: str) -> int:
    """Fill in the settings form, save it, and return the status the page answered with."""
    settings = page.locator("#settings")
    settings.get_by_label("Credits may go back from members to the pool").set_checked(returnable)
    settings.get_by_label("Top members up on demand").set_checked(auto)
    settings.get_by_label("Bundle (credits)").fill(bundle)
    settings.get_by_label("Cap per member").fill(cap)
    with page.expect_response(
        lambda r: r.request.method == "POST" and r.url.endswith("/settings")
    ) as answered:
        settings.get_by_role("button", name="Save settings").click()
    return answered.value.status


def charge(api: httpx.Client, org: str, member: str, key: str, amount: str, frames: int) -> Any:
    """The vendor's render farm charges one render's usage to a student."""
    return api.post(
        f"/orgs/{org}/members/{member}/usage",
        headers={"Authorization": f"Bearer {key}"},
        json={"amount": amount, "metrics": {"renders": 1, "frames": frames}},
    )


def test_students_are_topped_up_in_bundles_up_to_the_cap_and_nothing_goes_back(
    people: People, site: Server
) -> None:
    operator = people.new()
    sign_in_operator(operator)
    owner = people.new()
    sign_up(owner, "Olivia Owner", OWNER)
    org = open_org(operator, "Export class", OWNER)
    record_purchase(operator, "Export class", "100", reference="INV-7")

    owner.goto(f"/orgs/{org}")
    expect_pool(owner, available="100", allocated="0", used="0")
    expect_settings(owner, returnable=True, auto=False, bundle="5", cap="0")

    # A cap that is not a multiple of the bundle is refused next to the form; nothing changes.
    status = save_settings(owner, returnable=False, auto=True, bundle="5", cap="12")
    assert status == 422
    refusal = owner.locator("#settings").get_by_role("alert")
    expect(refusal).to_contain_text("multiple of the bundle")
    screenshot(owner, "export-settings-refused")
    owner.goto(f"/orgs/{org}")
    expect(owner.locator("#settings").get_by_role("alert")).to_have_count(0)
    expect_settings(owner, returnable=True, auto=False, bundle="5", cap="0")

    status = save_settings(owner, returnable=False, auto=True, bundle="5", cap="20")
    assert status == 303  # saved, and back to the page
    expect(owner.get_by_role("status")).to_have_text("Settings saved.")
    owner.goto(f"/orgs/{org}")
    expect_settings(owner, returnable=False, auto=True, bundle="5", cap="20")

    student = people.new()
    join_by_link(student, invite_link(owner), "Sam Student", STUDENT)

    # The render farm's key: shown once, on the page that made it.
    owner.goto(f"/orgs/{org}")
    owner.get_by_label("Key name").fill("render farm")
    owner.get_by_role("button", name="Create key").click()
    key = owner.get_by_label("New API key").input_value()
    assert len(key) >= 20
    owner.goto(f"/orgs/{org}")
    expect(owner.get_by_label("New API key")).to_have_count(0)
    expect(owner.locator("#keys")).to_contain_text("render farm")
    sam = member_id(owner, STUDENT)
    expect_row(owner, STUDENT, {"available": "0", "allocated": "0", "auto-allocated": "0"})

    with site.client() as api:
        # 3 against an empty wallet: one bundle of 5, 2 left.
        first = charge(api, org, sam, key, "3", 240)
        assert first.status_code == 201, first.text
        assert first.json()["member"]["auto_allocated"] == "5"
        owner.goto(f"/orgs/{org}")
        expect_row(
            owner,
            STUDENT,
            {"available": "2", "allocated": "5", "auto-allocated": "5", "used": "3"},
        )
        expect_pool(owner, available="95", allocated="2", used="3")

        # 9 against 2: two bundles at once (2 + 10 >= 9).
        second = charge(api, org, sam, key, "9", 720)
        assert second.status_code == 201, second.text
        owner.goto(f"/orgs/{org}")
        expect_row(
            owner,
            STUDENT,
            {"available": "3", "allocated": "15", "auto-allocated": "15", "used": "12"},
        )
        # 8 against 3: one more bundle, and the cap of 20 is reached exactly.
        third = charge(api, org, sam, key, "8", 480)
        assert third.status_code == 201, third.text
        owner.goto(f"/orgs/{org}")
        reached = {"available": "0", "allocated": "20", "auto-allocated": "20", "used": "20"}
        expect_row(owner, STUDENT, reached)
        expect_pool(owner, available="80", allocated="0", used="20")

        # Past the cap, no more bundles: refused, and nothing moves.
        refused = charge(api, org, sam, key, "1", 60)
        assert refused.status_code == 409
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["code"] == "insufficient_credits"

    owner.goto(f"/orgs/{org}")
    expect_row(owner, STUDENT, reached)
    expect_pool(owner, available="80", allocated="0", used="20")
    expect(member_row(owner, STUDENT).locator('[data-metric="renders"]')).to_have_text("3")
    expect(member_row(owner, STUDENT).locator('[data-metric="frames"]')).to_have_text("1440")

    # Past the cap only a manual allotment helps, and it does not count toward the cap.
    row = member_row(owner, STUDENT)
    row.get_by_label("Credits for Sam Student").fill("4")
    row.get_by_role("button", name="Add credits to Sam Student").click()
    expect(owner.get_by_role("status")).to_have_text("Added 4 credits.")
    given = {"available": "4", "allocated": "24", "auto-allocated": "20", "used": "20"}
    expect_row(owner, STUDENT, given)
    expect_pool(owner, available="76", allocated="4")
    screenshot(owner, "export-dashboard-auto-allocated")

    # Nothing goes back: the row's take-back button ...
    row = member_row(owner, STUDENT)
    row.get_by_label("Credits for Sam Student").fill("2")
    with owner.expect_response(lambda r: r.request.method == "POST") as answered:
        row.get_by_role("button", name="Take credits from Sam Student").click()
    assert answered.value.status == 409
    expect(member_row(owner, STUDENT).get_by_role("alert")).to_contain_text(
        "does not let credits go back to the pool"
    )
    expect_row(owner, STUDENT, given)
    expect_pool(owner, available="76", allocated="4")

    # ... and the batch "Take back" of everything a ticked student has.
    owner.goto(f"/orgs/{org}")
    owner.get_by_label("Tick Sam Student").check()
    asked: list[str] = []

    def confirm(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.accept()

    owner.once("dialog", confirm)  # no amount: everything, so the page asks first
    with owner.expect_response(lambda r: r.request.method == "POST") as answered:
        owner.locator("#batch").get_by_role("button", name="Take back").click()
    assert asked == ["Take back everything each chosen member has available?"]
    assert answered.value.status == 409
    expect(owner.locator("#error-members")).to_contain_text(
        "does not let credits go back to the pool"
    )
    screenshot(owner, "export-take-back-refused")
    owner.goto(f"/orgs/{org}")
    expect_row(owner, STUDENT, given)
    expect_pool(owner, available="76", allocated="4", used="20")

    # The student sees its own wallet.
    student.goto("/me")
    expect(student.locator('[data-figure="available"]')).to_have_text("4")
    expect(student.locator('[data-figure="used"]')).to_have_text("20")
