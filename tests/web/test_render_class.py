"""The Render class, end to end through the pages: an instructor's class of students who spend
credits on renders.

Ines signs up, the operator opens her class and records 100 credits, three students join by
the invite link, Ines allots and takes back credits one by one and in batch, the render farm
charges usage with an API key Ines made on the page, and in the end Ines resets the class: the
old invite link stops working and the new one lets people in. Every figure is checked as the
page shows it.
"""

from __future__ import annotations

import csv
import io

import httpx2 as httpx
from playwright.sync_api import Page, expect

from tests.support.server import Server
from tests.web.conftest import People, screenshot
from tests.web.steps import figure, member_row, open_org, sign_in_operator, sign_up

CLASS = "Render class"
INES = ("Ines Instructor", "ines@school.test")
STUDENTS = {
    "ada": ("Ada Lovelace", "ada@school.test"),
    "ben": ("Ben Bauer", "ben@school.test"),
    "cleo": ("Cleo Chen", "cleo@school.test"),
}


def join_with_new_account(page: Page, link: str, name: str, email: str) -> None:
    """Open an invite link signed out, create an account on the spot, and join."""
    response = page.goto(link)
    assert response is not None
    assert response.status == 200
    expect(page.get_by_role("heading", name=f"Join {CLASS}")).to_be_visible()
    page.get_by_label("Your name").fill(name)
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Create account and join").click()
    expect(page.get_by_role("status")).to_have_text(f"You joined. Welcome, {name}.")
    expect(page.get_by_role("heading", name=CLASS)).to_be_visible()


def row_figures(page: Page, email: str) -> dict[str, str]:
    """A member row's usage totals and credits available, as the class manager shows them."""
    row = member_row(page, email)
    figures = {}
    for cell in row.locator("[data-metric]").all():
        figures[cell.get_attribute("data-metric") or ""] = (cell.text_content() or "").strip()
    figures["available"] = (row.locator('[data-figure="available"]').text_content() or "").strip()
    return figures


def expect_available(page: Page, **wallets: str) -> None:
    """Each named student's credits available, waiting for the page to show them."""
    for key, amount in wallets.items():
        row = member_row(page, STUDENTS[key][1])
        expect(row.locator('[data-figure="available"]')).to_have_text(amount)


def expect_pool(page: Page, *, available: str, allocated: str, used: str) -> None:
    """The pool's figures at the top of the class manager."""
    expect(page.locator('#pool [data-figure="available"]')).to_have_text(available)
    expect(page.locator('#pool [data-figure="allocated"]')).to_have_text(allocated)
    expect(page.locator('#pool [data-figure="used"]')).to_have_text(used)


def tick(page: Page, *keys: str) -> None:
    for key in keys:
        page.get_by_label(f"Tick {STUDENTS[key][0]}").check()


def batch(page: Page, target: str, amount: str, button: str) -> None:
    """Fill the batch form: target is "Ticked members" or "Every student"."""
    form = page.locator("#batch")
    form.get_by_label(target).check()
    form.get_by_label("Credits each").fill(amount)
    form.get_by_role("button", name=button, exact=True).click()


def per_row(page: Page, key: str, amount: str, *, take: bool = False) -> None:
    """Use the row form of one student: "+" adds, "minus" takes back."""
    name = STUDENTS[key][0]
    page.get_by_label(f"Credits for {name}").fill(amount)
    verb = "Take credits from" if take else "Add credits to"
    page.get_by_role("button", name=f"{verb} {name}").click()


def member_id(page: Page, key: str) -> str:
    row_id = member_row(page, STUDENTS[key][1]).get_attribute("id") or ""
    assert row_id.startswith("member-"), row_id
    return row_id.removeprefix("member-")


def charge(site: Server, key: str, org: str, member: str, amount: str, **metrics: int) -> None:
    """The render farm charges a student's usage through the API."""
    with site.client() as api:
        answer = api.post(
            f"/orgs/{org}/members/{member}/usage",
            json={"amount": amount, "metrics": metrics},
            headers={"Authorization": f"Bearer {key}"},
        )
    assert answer.status_code == 201, answer.text
    assert answer.json()["transfer"]["amount"] == amount


def ledger_amounts(page: Page) -> list[tuple[str, str]]:
    """(kind, amount) of each ledger row, newest first."""
    rows = page.locator("tbody tr[data-kind]")
    return [
        (row.get_attribute("data-kind") or "", (row.locator("td.num").text_content() or ""))
        for row in rows.all()
    ]


def test_the_render_class_from_sign_up_to_reset(people: People, site: Server) -> None:
    # Ines signs up; the operator opens her class and records what it bought.
    ines = people.new()
    sign_up(ines, *INES)
    operator = people.new()
    sign_in_operator(operator)
    org = open_org(operator, CLASS, INES[1])
    # Typed as the invoice has it; shown, like every amount, in canonical form.
    operator.get_by_label(f"Credits bought by {CLASS}").fill("100.00")
    operator.locator(f'tr[data-org="{CLASS}"]').get_by_label("Reference").fill("INV-1")
    operator.locator(f'tr[data-org="{CLASS}"]').get_by_role("button", name="Record").click()
    expect(operator.get_by_role("status")).to_have_text("Recorded a purchase of 100 credits.")
    expect(operator.locator(f'tr[data-org="{CLASS}"] [data-figure="available"]')).to_have_text(
        "100"
    )
    screenshot(operator, "operator-console")

    # Ines opens her class manager and reads the invite link.
    ines.goto(f"/orgs/{org}")
    expect(ines.get_by_role("heading", name=CLASS, exact=True)).to_be_visible()
    expect_pool(ines, available="100", allocated="0", used="0")
    link = ines.locator("#invite-link").input_value()
    assert link.startswith(f"{site.url}/join/"), link
    ines.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site.url)
    copy = ines.locator('#invite button[data-copy="#invite-link"]')
    expect(copy).to_have_text("Copy")
    copy.click()
    expect(copy).to_have_text("Copied")
    assert ines.evaluate("navigator.clipboard.readText()") == link

    # Three students join by that link, each creating an account on the spot.
    students = {key: people.new() for key in STUDENTS}
    students["ada"].goto(link)
    screenshot(students["ada"], "join")
    for key, (name, email) in STUDENTS.items():
        join_with_new_account(students[key], link, name, email)

    ines.reload()
    expect(ines.get_by_role("heading", name="Members (4)")).to_be_visible()
    for _, email in STUDENTS.values():
        expect(member_row(ines, email).locator("[data-role]")).to_have_text("member")

    # One by one with the row's own form, then in batch: the ticked members, every student.
    per_row(ines, "ada", "10")
    expect(ines.get_by_role("status")).to_have_text("Added 10 credits.")
    expect_available(ines, ada="10", ben="0", cleo="0")
    tick(ines, "ben", "cleo")
    batch(ines, "Ticked members", "2.5", "Allot")
    expect(ines.get_by_role("status")).to_have_text("Allotted 5 credits to 2 member(s).")
    expect_available(ines, ada="10", ben="2.5", cleo="2.5")
    batch(ines, "Every student", "5", "Allot")
    expect(ines.get_by_role("status")).to_have_text("Allotted 15 credits to 3 member(s).")
    expect_available(ines, ada="15", ben="7.5", cleo="7.5")
    # The owner is not a student: "Every student" left her wallet alone.
    expect(member_row(ines, INES[1]).locator('[data-figure="available"]')).to_have_text("0")
    expect_pool(ines, available="70", allocated="30", used="0")

    # Ines makes a key for the render farm; it is shown once, on the page that made it.
    ines.get_by_label("Key name").fill("render farm")
    ines.get_by_role("button", name="Create key").click()
    key = ines.get_by_label("New API key").input_value()
    assert len(key) >= 20
    ids = {student: member_id(ines, student) for student in STUDENTS}
    charge(site, key, org, ids["ada"], "2", renders=1, frames=240)
    charge(site, key, org, ids["ada"], "3.5", renders=2, frames=480)
    charge(site, key, org, ids["ben"], "1.25", renders=1, frames=120)

    ines.goto(f"/orgs/{org}")
    expect(ines.get_by_label("New API key")).to_have_count(0)
    expect(ines.get_by_role("columnheader", name="Renders")).to_be_visible()
    expect_available(ines, ada="9.5", ben="6.25", cleo="7.5")
    assert row_figures(ines, STUDENTS["ada"][1]) == {
        "renders": "3",
        "frames": "720",
        "available": "9.5",
    }
    assert row_figures(ines, STUDENTS["ben"][1]) == {
        "renders": "1",
        "frames": "120",
        "available": "6.25",
    }
    assert row_figures(ines, STUDENTS["cleo"][1]) == {
        "renders": "0",
        "frames": "0",
        "available": "7.5",
    }
    expect_pool(ines, available="70", allocated="23.25", used="6.75")

    # Taking back: one row, then the ticked members.
    per_row(ines, "cleo", "1.5", take=True)
    expect(ines.get_by_role("status")).to_have_text("Took back 1.5 credits.")
    expect_available(ines, ada="9.5", ben="6.25", cleo="6")
    tick(ines, "ada", "ben")
    batch(ines, "Ticked members", "2", "Take back")
    expect(ines.get_by_role("status")).to_have_text("Took back 4 credits from 2 member(s).")
    expect_available(ines, ada="7.5", ben="4.25", cleo="6")
    expect_pool(ines, available="75.5", allocated="17.75", used="6.75")
    screenshot(ines, "dashboard")

    # Refused actions say why next to their form, and change nothing.
    with ines.expect_response(lambda r: r.request.method == "POST") as answer:
        batch(ines, "Every student", "30", "Allot")  # 90 wanted, 75.5 in the pool
    assert answer.value.status == 409
    expect(ines.locator("#error-members")).to_have_text(
        "the pool has 75.5 available; 3 x 30 = 90 needed"
    )
    expect_pool(ines, available="75.5", allocated="17.75", used="6.75")
    with ines.expect_response(lambda r: r.request.method == "POST") as answer:
        per_row(ines, "ben", "5", take=True)  # Ben has 4.25
    assert answer.value.status == 409
    ben_row = member_row(ines, STUDENTS["ben"][1])
    expect(ben_row.get_by_role("alert")).to_contain_text("has 4.25 available, less than 5")
    expect_available(ines, ada="7.5", ben="4.25", cleo="6")
    ines.goto(f"/orgs/{org}")
    expect(ines.get_by_role("alert")).to_have_count(0)
    expect_available(ines, ada="7.5", ben="4.25", cleo="6")
    expect_pool(ines, available="75.5", allocated="17.75", used="6.75")

    # The ledger, by member and by kind.
    ines.get_by_role("link", name="Ledger").click()
    expect(ines.get_by_role("heading", name=f"Ledger of {CLASS}")).to_be_visible()
    # purchase, 1 + 2 + 3 allocations, 3 usages, 1 + 2 revocations
    expect(ines.locator("tbody tr[data-kind]")).to_have_count(13)
    screenshot(ines, "ledger")
    ines.get_by_label("Member").select_option(label=STUDENTS["ada"][0])
    ines.get_by_role("button", name="Filter").click()
    expect(ines.locator("tbody tr[data-kind]")).to_have_count(5)
    assert ledger_amounts(ines) == [
        ("revocation", "2"),
        ("usage", "3.5"),
        ("usage", "2"),
        ("allocation", "5"),
        ("allocation", "10"),
    ]
    ines.get_by_label("Kind").select_option("usage")
    ines.get_by_role("button", name="Filter").click()
    expect(ines.locator("tbody tr[data-kind]")).to_have_count(2)
    assert ledger_amounts(ines) == [("usage", "3.5"), ("usage", "2")]
    expect(ines.locator("tbody tr").first).to_contain_text("renders 2 frames 480")
    ines.get_by_label("Member").select_option(label="everyone")
    ines.get_by_role("button", name="Filter").click()
    assert ledger_amounts(ines) == [("usage", "1.25"), ("usage", "3.5"), ("usage", "2")]

    # The members' figures as CSV, downloaded with Ines's session from the page's link.
    ines.get_by_role("link", name=CLASS).click()
    csv_link = ines.get_by_role("link", name="Members (CSV)")
    expect(csv_link).to_have_attribute("href", f"/orgs/{org}/members.csv")
    download = ines.request.get(f"/orgs/{org}/members.csv")
    assert download.status == 200
    assert download.headers["content-type"].startswith("text/csv")
    table = {row["email"]: row for row in csv.DictReader(io.StringIO(download.text()))}
    assert set(table) == {INES[1]} | {email for _, email in STUDENTS.values()}
    wanted = {
        "ada": ("7.5", "15", "5.5", "3", "720"),
        "ben": ("4.25", "7.5", "1.25", "1", "120"),
        "cleo": ("6", "7.5", "0", "0", "0"),
    }
    for key, figures in wanted.items():
        row = table[STUDENTS[key][1]]
        columns = ("credits_available", "credits_allocated", "credits_used", "renders", "frames")
        assert tuple(row[column] for column in columns) == figures, key
        assert (row["role"], row["status"]) == ("member", "active")
    assert table[INES[1]]["role"] == "owner"

    # A student's own page.
    ada = students["ada"]
    ada.goto("/me")
    assert figure(ada, "available") == "7.5"
    assert figure(ada, "used") == "5.5"
    expect(ada.locator('[data-metric="renders"]')).to_have_text("3")
    expect(ada.locator('[data-metric="frames"]')).to_have_text("720")
    screenshot(ada, "me")

    # An e-mailed invitation is pending when the class is reset.
    ines.goto(f"/orgs/{org}")
    ines.get_by_label("Invite by e-mail").fill("dan@school.test")
    ines.get_by_role("button", name="Send invitations").click()
    expect(ines.get_by_role("status")).to_have_text("Invited 1 address(es).")

    # The reset page previews exactly what the reset then does.
    ines.get_by_role("link", name="Reset the class…").click()
    expect(ines.get_by_role("heading", name=f"Reset {CLASS}?")).to_be_visible()
    expect(ines.locator('[data-preview="removed"] strong')).to_have_text("3")
    expect(ines.locator('[data-preview="revoked"] strong')).to_have_text("17.75")
    expect(ines.locator('[data-preview="invitations"] strong')).to_have_text("1")
    screenshot(ines, "reset-preview")
    ines.get_by_role("button", name="Reset the class").click()
    expect(ines.get_by_role("status")).to_have_text(
        "Class reset: 3 removed, 17.75 credits back in the pool, "
        "1 invitation(s) revoked, new invite link made."
    )
    expect(ines.get_by_role("heading", name="Members (1)")).to_be_visible()
    expect(ines.get_by_role("heading", name="Removed members (3)")).to_be_visible()
    expect(ines.get_by_text("Pending invitations")).to_have_count(0)
    expect_pool(ines, available="93.25", allocated="0", used="6.75")
    removed_ada = ines.locator(f'#removed tr[data-member="{STUDENTS["ada"][1]}"]')
    expect(removed_ada.locator("td.num")).to_have_text(["720", "3", "0", "5.5"])  # frames, renders

    # The old link now answers "not valid"; the new one lets people in again.
    new_link = ines.locator("#invite-link").input_value()
    assert new_link != link
    assert new_link.startswith(f"{site.url}/join/")
    stranger = people.new()
    response = stranger.goto(link)
    assert response is not None
    assert response.status == 404
    expect(stranger.get_by_role("heading", name="Not found")).to_be_visible()
    expect(stranger.get_by_text("This link is not valid any more")).to_be_visible()
    screenshot(stranger, "link-not-valid")
    with httpx.Client(base_url=site.url, timeout=10.0) as plain:
        assert plain.get(link.removeprefix(site.url)).status_code == 404
    join_with_new_account(stranger, new_link, "Dan Dune", "dan@school.test")

    # Ada comes back by the new link and finds her history, with no credits left on her.
    ada.goto(new_link)
    ada.get_by_role("button", name=f"Join {CLASS}").click()
    expect(ada.get_by_role("status")).to_have_text("You joined. Welcome, Ada Lovelace.")
    assert figure(ada, "available") == "0"
    assert figure(ada, "used") == "5.5"
    expect(ada.locator('[data-metric="renders"]')).to_have_text("3")

    ines.goto(f"/orgs/{org}")
    expect(ines.get_by_role("heading", name="Members (3)")).to_be_visible()
    expect(ines.get_by_role("heading", name="Removed members (2)")).to_be_visible()
    expect_pool(ines, available="93.25", allocated="0", used="6.75")
