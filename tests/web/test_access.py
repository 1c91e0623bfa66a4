"""Who sees what, and pages anyone can use: sign-in walls, roles, another org's pages, CSRF,
a phone's width, labels and the keyboard."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect

from tests.web.conftest import People, screenshot
from tests.web.steps import (
    figure,
    invite_link,
    join_by_link,
    member_row,
    open_org,
    record_purchase,
    sign_in,
    sign_in_operator,
    sign_up,
)

CLASS = "Render class"


@dataclass
class Class:
    org: str
    owner: Page
    student: Page


@pytest.fixture
def render_class(people: People) -> Class:
    """A class of one owner (Ines) and one student (Ada), with 20 credits bought."""
    owner = people.new()
    sign_up(owner, "Ines Instructor", "ines@school.test")
    operator = people.new()
    sign_in_operator(operator)
    org = open_org(operator, CLASS, "ines@school.test")
    record_purchase(operator, CLASS, "20")
    owner.goto(f"/orgs/{org}")
    student = people.new()
    join_by_link(student, invite_link(owner), "Ada Lovelace", "ada@school.test")
    return Class(org, owner, student)


def status_of(page: Page, path: str) -> int:
    response = page.goto(path)
    assert response is not None
    return response.status


def test_a_page_of_another_org_answers_not_found(people: People) -> None:
    operator = people.new()
    sign_in_operator(operator)
    operator.goto("/operator")
    operator.get_by_label("Name", exact=True).fill("Other studio")
    operator.get_by_label("Owner's e-mail").fill("olga@other.test")
    operator.get_by_role("button", name="Open the org").click()
    # Refused next to the form, and nothing opened: the owner signs up first.
    expect(operator.get_by_role("alert")).to_contain_text("sign up first")
    expect(operator.get_by_role("heading", name="Every org (0)")).to_be_visible()

    olga = people.new()
    sign_up(olga, "Olga Other", "olga@other.test")
    theirs = open_org(operator, "Other studio", "olga@other.test")
    mine_owner = people.new()
    sign_up(mine_owner, "Ines Instructor", "ines@school.test")
    open_org(operator, CLASS, "ines@school.test")

    for path in (f"/orgs/{theirs}", f"/orgs/{theirs}/ledger", f"/orgs/{theirs}/reset"):
        assert status_of(mine_owner, path) == 404, path
        expect(mine_owner.get_by_role("heading", name="Not found")).to_be_visible()
    screenshot(mine_owner, "not-found")
    csv = mine_owner.request.get(f"/orgs/{theirs}/members.csv")
    assert csv.status == 404
    assert "olga@other.test" not in csv.text()
    # Its owner does see it.
    olga.goto(f"/orgs/{theirs}")
    expect(olga.get_by_role("heading", name="Other studio")).to_be_visible()


def test_signed_out_visitors_sign_in_first_and_come_back(render_class: Class, people: People):
    visitor = people.new()
    for path in ("/me", f"/orgs/{render_class.org}", "/operator"):
        visitor.goto(path)
        expect(visitor).to_have_url(f"{people.site.url}/sign-in?next={quote(path, safe='')}")
        expect(visitor.get_by_role("heading", name="Sign in")).to_be_visible()
    visitor.goto("/")
    expect(visitor).to_have_url(f"{people.site.url}/sign-in")

    visitor.goto(f"/orgs/{render_class.org}")
    sign_in_from_here(visitor, "ines@school.test")
    expect(visitor.get_by_role("heading", name=CLASS)).to_be_visible()
    assert visitor.url.endswith(f"/orgs/{render_class.org}")


def sign_in_from_here(page: Page, email: str) -> None:
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Sign in").click()


def test_a_student_sees_its_own_credits_and_not_the_class_manager(render_class: Class):
    owner, student = render_class.owner, render_class.student
    owner.goto(f"/orgs/{render_class.org}")
    member_row(owner, "ada@school.test").get_by_label("Credits for Ada Lovelace").fill("4")
    owner.get_by_role("button", name="Add credits to Ada Lovelace").click()
    expect(owner.get_by_role("status")).to_have_text("Added 4 credits.")

    student.goto("/me")
    expect(student.get_by_role("heading", name=CLASS)).to_be_visible()
    assert figure(student, "available") == "4"
    # Seats cost this class nothing: no seat badge to puzzle over.
    expect(student.locator("[data-seat]")).to_have_count(0)
    expect(student.get_by_role("cell", name="allocation")).to_be_visible()
    screenshot(student, "student-me")
    # Home offers a student no class manager.
    student.goto("/")
    expect(student.get_by_role("link", name="Manage the class")).to_have_count(0)
    for path in (f"/orgs/{render_class.org}", f"/orgs/{render_class.org}/ledger", "/operator"):
        assert status_of(student, path) == 403, path
        expect(student.get_by_role("heading", name="Not allowed")).to_be_visible()
    assert student.request.get(f"/orgs/{render_class.org}/transfers.csv").status == 403


def test_a_manager_runs_the_class_but_only_the_owner_governs_it(
    render_class: Class, people: People
):
    owner = render_class.owner
    owner.goto(f"/orgs/{render_class.org}")
    member_row(owner, "ada@school.test").get_by_role("button", name="Make manager").click()
    expect(owner.get_by_role("status")).to_have_text("Ada Lovelace is now manager.")

    manager = render_class.student  # Ada, now a manager
    manager.goto(f"/orgs/{render_class.org}")
    expect(manager.get_by_role("heading", name="Members (2)")).to_be_visible()
    expect(manager.get_by_role("heading", name="Settings")).to_have_count(0)
    expect(manager.get_by_role("heading", name="API keys")).to_have_count(0)
    expect(manager.get_by_role("link", name="Reset the class…")).to_have_count(0)
    assert status_of(manager, f"/orgs/{render_class.org}/reset") == 403
    # A manager's forged settings form is refused, and nothing changes.
    manager.goto(f"/orgs/{render_class.org}")
    token = manager.locator('input[name="csrf_token"]').first.input_value()
    forged = manager.request.post(
        f"/orgs/{render_class.org}/pause", form={"csrf_token": token, "action": "pause"}
    )
    assert forged.status == 403
    owner.goto(f"/orgs/{render_class.org}")
    expect(owner.get_by_role("button", name="Pause the org")).to_be_visible()


def test_a_form_without_this_sessions_csrf_token_is_refused_and_changes_nothing(
    render_class: Class,
):
    owner = render_class.owner
    owner.goto(f"/orgs/{render_class.org}")
    before = figure(owner, "available")
    form = {"target": "all", "amount": "5", "action": "allot"}

    for token in (None, "a-token-from-another-session"):
        sent = form | ({"csrf_token": token} if token else {})
        refused = owner.request.post(f"/orgs/{render_class.org}/credits", form=sent)
        assert refused.status == 403
        assert "This form has expired" in refused.text()

    owner.reload()
    assert figure(owner, "available") == before == "20"
    # The same form with the page's own token goes through.
    token = owner.locator('input[name="csrf_token"]').first.input_value()
    done = owner.request.post(
        f"/orgs/{render_class.org}/credits", form=form | {"csrf_token": token}
    )
    assert done.ok
    owner.reload()
    assert figure(owner, "available") == "15"


def test_the_class_manager_fits_a_phone(render_class: Class, people: People):
    phone = people.new(width=390, height=844)
    sign_in(phone, "ines@school.test")
    phone.goto(f"/orgs/{render_class.org}")
    screenshot(phone, "dashboard-phone")

    # The page never scrolls sideways; the members table scrolls inside its own box.
    overflow = phone.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    # The main controls sit within the phone's width.
    for name in ("Copy", "Send invitations", "Allot", "Take back", "Save settings"):
        box = phone.get_by_role("button", name=name, exact=True).bounding_box()
        assert box is not None, name
        assert box["x"] >= 0, name
        assert box["x"] + box["width"] <= 390, name


UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea, button')]
  .filter((el) => el.type !== 'hidden')
  .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                  && !(el.tagName === 'BUTTON' && el.textContent.trim()))
  .map((el) => el.outerHTML.slice(0, 120))"""


def test_every_control_has_a_label(render_class: Class, people: People):
    operator = people.new()
    sign_in_operator(operator)
    visitor = people.new()
    pages = [
        (render_class.owner, f"/orgs/{render_class.org}"),
        (render_class.owner, f"/orgs/{render_class.org}/reset"),
        (render_class.owner, f"/orgs/{render_class.org}/ledger"),
        (render_class.student, "/me"),
        (operator, "/operator"),
        (visitor, "/sign-up"),
        (visitor, "/sign-in"),
    ]
    for page, path in pages:
        page.goto(path)
        assert page.evaluate(UNLABELLED) == [], path
    visitor.goto("/sign-up")
    screenshot(visitor, "sign-up")


def test_signing_in_works_from_the_keyboard_alone(render_class: Class, people: People):
    page = people.new()
    page.goto("/sign-in")
    screenshot(page, "sign-in")
    # The first Tab reaches the skip link, which then shows.
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    expect(page.get_by_role("link", name="Skip to content")).to_be_in_viewport()

    page.get_by_label("E-mail").focus()
    page.keyboard.type("ines@school.test")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type("correct horse battery")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Hello, Ines Instructor")).to_be_visible()
    expect(page.get_by_role("link", name="Manage the class")).to_be_visible()
    screenshot(page, "home")


def test_a_reset_not_confirmed_from_its_preview_is_refused_on_the_reset_page(
    render_class: Class,
):
    owner = render_class.owner
    owner.goto(f"/orgs/{render_class.org}/reset")
    token = owner.locator('input[name="csrf_token"]').first.input_value()

    refused = owner.request.post(f"/orgs/{render_class.org}/reset", form={"csrf_token": token})

    assert refused.status == 422
    assert "Confirm the reset from this page" in refused.text()
    owner.goto(f"/orgs/{render_class.org}")
    expect(owner.get_by_role("heading", name="Members (2)")).to_be_visible()


def test_no_other_site_may_frame_the_pages(people: People):
    page = people.new()
    response = page.goto("/sign-in")
    assert response is not None
    headers = response.headers
    assert headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["referrer-policy"] == "same-origin"
