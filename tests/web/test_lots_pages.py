"""Lots in the browser: a school bought 100 credits and was given a free trial of 20 (spent
first, priority 10, expiring in five days). Its owner allots 15 to a student; the class manager
lists the trial above the paid lot with where their credits are, and warns at the top that 20
credits expire this week, the student's 15 included. The student sees on My credits that their
15 expire then, and cannot open the class manager."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from playwright.sync_api import Locator, Page, expect

from creditpool.domain.amounts import credits
from creditpool.services import credits as credit_service
from creditpool.storage.database import create_database_engine
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.server import Server
from tests.web.conftest import People, screenshot
from tests.web.steps import (
    invite_link,
    join_by_link,
    member_row,
    open_org,
    record_purchase,
    sign_in_operator,
    sign_up,
)

SCHOOL = "Harbour school"
OWNER = "hana@harbour.test"
STUDENT, STUDENT_EMAIL = "Sam Student", "sam@harbour.test"


def give_trial(site: Server, org_id: str, expires_at: datetime) -> None:
    """The vendor grants the school a trial of 20 credits, spent before anything else (the
    operator's form records plain purchases: the trial's terms go in through the services, on
    the served database)."""
    engine = create_database_engine(site.env["CREDITPOOL_DATABASE_URL"])
    try:
        credit_service.record_purchase(
            UnitOfWork.for_engine(engine),
            org_id,
            credits("20"),
            reference="free trial",
            actor="operator:test",
            priority=10,
            expires_at=expires_at,
        )
    finally:
        engine.dispose()


def as_shown(instant: datetime) -> str:
    """An instant as the pages write it, on UTC clocks (the org's default)."""
    return f"{instant:%A} {instant.day} {instant:%B %Y, %H:%M}"


def lot_cell(row: Locator, figure: str) -> Locator:
    return row.locator(f'[data-figure="{figure}"]')


def expect_lot(row: Locator, **figures: str) -> None:
    """A lot's row shows these figures (`in_pool` for the cell `in-pool`)."""
    for name, shown in figures.items():
        expect(lot_cell(row, name.replace("_", "-"))).to_have_text(shown)


def test_a_trial_lot_is_listed_first_and_its_expiry_announced_to_owner_and_student(
    people: People, site: Server
) -> None:
    operator = people.new()
    sign_in_operator(operator)
    owner: Page = people.new()
    sign_up(owner, "Hana Harbour", OWNER)
    org = open_org(operator, SCHOOL, OWNER)
    record_purchase(operator, SCHOOL, "100", reference="PO-1")
    trial_ends = (datetime.now(UTC) + timedelta(days=5)).replace(second=0, microsecond=0)
    give_trial(site, org, trial_ends)

    owner.goto(f"/orgs/{org}")
    student = people.new()
    join_by_link(student, invite_link(owner), STUDENT, STUDENT_EMAIL)
    owner.goto(f"/orgs/{org}")
    row = member_row(owner, STUDENT_EMAIL)
    row.get_by_label(f"Credits for {STUDENT}").fill("15")
    row.get_by_role("button", name=f"Add credits to {STUDENT}").click()
    expect(owner.get_by_role("status")).to_have_text("Added 15 credits.")

    lots = owner.locator("#lots")
    expect(lots.get_by_role("heading", name="Credits by lot")).to_be_visible()
    rows = lots.locator("tbody tr")
    expect(rows).to_have_count(2)
    trial, paid = rows.nth(0), rows.nth(1)
    expect_lot(
        trial,
        order="1",
        source="Purchase",
        priority="10",
        amount="20",
        in_pool="5",
        in_wallets="15",
        used="0",
        expired="0",
        expires=as_shown(trial_ends),
    )
    expect_lot(
        paid,
        order="2",
        priority="50",
        amount="100",
        in_pool="100",
        in_wallets="0",
        used="0",
        expires="never",
    )

    notice = owner.locator("#expiring-soon")
    expect(notice).to_be_visible()
    heading = notice.get_by_role("heading")
    expect(heading).to_have_text("Expires soon 20 credits expire within 7 days")
    expect(notice.locator("[data-expiring]")).to_have_text(
        f"20 credits expire on {as_shown(trial_ends)} (UTC)"
    )
    expect(notice).to_contain_text("in students' wallets")
    notice.get_by_role("link", name="See the credits by lot").click()
    expect(lots).to_be_in_viewport()
    owner.evaluate("window.scrollTo(0, 0)")
    screenshot(owner, "lots-class-manager")

    student.goto("/me")
    expiring = student.locator(f"#org-{org} [data-expiring]")
    expect(expiring).to_have_text(
        f"Expires 15 credits expire on {as_shown(trial_ends)} (UTC): use them before then."
    )
    expect(student.locator("#lots")).to_have_count(0)
    screenshot(student, "lots-my-credits")

    # The class manager is not a student's: no lots, no notice.
    student.goto(f"/orgs/{org}")
    expect(student.get_by_role("heading", level=1)).to_have_text("Not allowed")
    expect(student.locator("#lots")).to_have_count(0)
    expect(student.locator("#expiring-soon")).to_have_count(0)
