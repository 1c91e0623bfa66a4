"""Invitations by e-mail, groups, and removing and bringing back members, through the pages.

Ines invites her class by pasting addresses: a bad one refuses the whole paste, a revoked
invitation's link stops working, and a newcomer follows her e-mailed link, signs up from it
and accepts. In a second class Ines makes a group, allots to it with the batch form, removes a
member and brings him back with his history and his group, and deletes the group.

Every server here sends mail: `site` is overridden so that `creditpool serve` runs with
CREDITPOOL_SMTP_URL pointing at a real SMTP server (aiosmtpd) in this process, and its own
worker delivers the invitations. The e-mailed link is then followed in a browser, as the
invitee would.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.support.server import Server
from tests.support.smtp import SmtpServer, smtp_server
from tests.web.conftest import ARTIFACTS, PASSWORD, People, operator_site, screenshot
from tests.web.steps import (
    join_by_link,
    member_row,
    open_org,
    record_purchase,
    sign_in_operator,
    sign_up,
)

INES = ("Ines Instructor", "ines@school.test")
ADA = ("Ada Lovelace", "ada@school.test")
BEN = ("Ben Bauer", "ben@school.test")
CLEO = ("Cleo Chen", "cleo@school.test")


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def site(tmp_path: Path, migrated_sqlite: Path, smtp: SmtpServer) -> Iterator[Server]:
    """The usual site (see conftest), its worker sending mail to `smtp`."""
    environment = {"CREDITPOOL_SMTP_URL": smtp.url}
    with operator_site(tmp_path, migrated_sqlite, environment=environment) as server:
        yield server


def class_of(people: People, name: str, *, credits: str = "") -> tuple[Page, str]:
    """Ines signs up and the operator opens her class (buying `credits` for it, if given);
    return Ines's page, on her class manager, and the org's id."""
    ines = people.new()
    sign_up(ines, *INES)
    operator = people.new()
    sign_in_operator(operator)
    org = open_org(operator, name, INES[1])
    if credits:
        record_purchase(operator, name, credits)
    operator.context.close()
    ines.goto(f"/orgs/{org}")
    expect(ines.get_by_role("heading", name=name, exact=True)).to_be_visible()
    return ines, org


def pending(email: str) -> re.Pattern[str]:
    """A line of the class manager's pending invitations."""
    return re.compile(rf"^{re.escape(email)} \(licensed, sent \d{{4}}-\d\d-\d\d\)\s+Revoke\s*$")


def invite(page: Page, pasted: str) -> None:
    page.get_by_label("Invite by e-mail").fill(pasted)
    page.get_by_role("button", name="Send invitations").click()


def expect_not_valid(page: Page, link: str) -> None:
    response = page.goto(link)
    assert response is not None
    assert response.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    expect(page.get_by_text("This link is not valid any more")).to_be_visible()


def test_invitations_by_email_from_paste_to_member(
    people: People, site: Server, smtp: SmtpServer
) -> None:
    ines, org = class_of(people, "Mail class")
    invitations = ines.locator("#invite li")

    # One bad address in the paste: refused beside the form, nobody invited, the paste kept.
    pasted = f"{ADA[1]}, ben@school\n{CLEO[1]}"
    with ines.expect_response(lambda r: r.request.method == "POST") as answer:
        invite(ines, pasted)
    assert answer.value.status == 422
    expect(ines.locator("#error-invite")).to_contain_text("'ben@school' is not an e-mail address")
    expect(ines.get_by_label("Invite by e-mail")).to_have_value(pasted)
    expect(ines.get_by_text("Pending invitations")).to_have_count(0)
    # An address that is a member already refuses the whole paste too.
    with ines.expect_response(lambda r: r.request.method == "POST") as answer:
        invite(ines, f"{ADA[1]} {INES[1]}")
    assert answer.value.status == 409
    expect(ines.locator("#error-invite")).to_have_text(f"{INES[1]} is already a member of the org")
    expect(ines.get_by_text("Pending invitations")).to_have_count(0)

    # Fixed, pasted again (commas, new lines, any case): three pending, newest first.
    invite(ines, f"{ADA[1]},\n Ben@School.test\n\n{CLEO[1]};")
    expect(ines.get_by_role("status")).to_have_text("Invited 3 address(es).")
    expect(ines.locator("#error-invite")).to_have_count(0)
    expect(invitations).to_have_text([pending(CLEO[1]), pending(BEN[1]), pending(ADA[1])])

    # Cleo's is withdrawn: it leaves the list.
    ines.get_by_role("button", name=f"Revoke the invitation to {CLEO[1]}").click()
    expect(ines.get_by_role("status")).to_have_text("Invitation revoked.")
    expect(invitations).to_have_text([pending(BEN[1]), pending(ADA[1])])

    # The worker mailed each of the three their own link (Cleo's went before it was revoked).
    mails = {address: smtp.wait_for(address) for address in (ADA[1], BEN[1], CLEO[1])}
    for address, mail in mails.items():
        assert mail.recipients == [address]
        assert mail.message["Subject"] == "You are invited to Mail class"
        assert mail.link.startswith(f"{site.url}/invitations/{org}.")
    assert len({mail.link for mail in mails.values()}) == 3
    invited = [r for r in smtp.received if "You are invited" in r.message["Subject"]]
    assert len(invited) == 3  # besides the mail that asked Ines to confirm her address

    # Ada, who has no account, follows her link, signs up from there and comes back to it.
    ada = people.new()
    response = ada.goto(mails[ADA[1]].link)
    assert response is not None
    assert response.status == 200
    expect(ada.get_by_role("heading", name="Invitation to Mail class")).to_be_visible()
    expect(ada.get_by_text("This invitation was sent to")).to_have_text(
        f"This invitation was sent to {ADA[1]}."
    )
    screenshot(ada, "invitation")
    ada.get_by_role("link", name="create an account").click()
    expect(ada.get_by_label("E-mail")).to_have_value(ADA[1])
    ada.get_by_label("Your name").fill(ADA[0])
    ada.get_by_label("Password").fill(PASSWORD)
    ada.get_by_role("button", name="Create account").click()
    # Signing up from the invitation accepts it: one step.
    expect(ada.get_by_role("status")).to_have_text("Invitation accepted: welcome.")
    expect(ada.get_by_role("heading", name="Mail class")).to_be_visible()

    # Ben's link is Ben's: Ada is told so, and has nothing to press.
    ada.goto(mails[BEN[1]].link)
    expect(ada.get_by_role("alert")).to_contain_text(
        f"You are signed in as {ADA[1]}: only {BEN[1]} can accept this invitation."
    )
    expect(ada.get_by_role("button", name=re.compile("^Accept"))).to_have_count(0)

    # Ada is a member on the class manager; only Ben is still pending.
    ines.goto(f"/orgs/{org}")
    expect(ines.get_by_role("heading", name="Members (2)")).to_be_visible()
    expect(member_row(ines, ADA[1]).locator("[data-role]")).to_have_text("member")
    expect(member_row(ines, ADA[1]).get_by_label(f"Seat of {ADA[0]}")).to_have_value("licensed")
    expect(invitations).to_have_text([pending(BEN[1])])

    # Cleo's revoked link, and Ada's used one, lead to "not valid".
    cleo = people.new()
    expect_not_valid(cleo, mails[CLEO[1]].link)
    screenshot(cleo, "invitation-not-valid")
    expect_not_valid(ada, mails[ADA[1]].link)


def test_groups_and_removing_and_bringing_back_members(people: People) -> None:
    ines, org = class_of(people, "Group class", credits="100")
    link = ines.locator("#invite-link").input_value()
    for name, email in (ADA, BEN, CLEO):
        join_by_link(people.new(), link, name, email)
    ines.reload()
    expect(ines.get_by_role("heading", name="Members (4)")).to_be_visible()
    groups, summary = ines.locator("#groups"), ines.locator("#groups summary")
    form = groups.locator("details form")

    ines.get_by_label("New group").fill("Tuesday")
    ines.get_by_role("button", name="Create group").click()
    expect(ines.get_by_role("status")).to_have_text("Group Tuesday created.")
    expect(summary).to_have_text(["Tuesday (0)"])

    # Renamed, and the three students in at once; then Cleo out again.
    summary.click()
    form.get_by_label("Name").fill("Tuesday lab")
    for name, _ in (ADA, BEN, CLEO):
        form.get_by_label(name).check()
    form.get_by_role("button", name="Save group").click()
    expect(ines.get_by_role("status")).to_have_text("Group Tuesday lab saved: 3 member(s).")
    expect(summary).to_have_text(["Tuesday lab (3)"])
    summary.click()
    expect(form.get_by_role("group", name="Members of Tuesday lab")).to_be_visible()
    form.get_by_label(CLEO[0]).uncheck()
    form.get_by_role("button", name="Save group").click()
    expect(ines.get_by_role("status")).to_have_text("Group Tuesday lab saved: 2 member(s).")
    expect(summary).to_have_text(["Tuesday lab (2)"])
    summary.click()
    expect(form.get_by_label(ADA[0])).to_be_checked()
    expect(form.get_by_label(BEN[0])).to_be_checked()
    expect(form.get_by_label(CLEO[0])).not_to_be_checked()
    expect(form.get_by_label(INES[0])).not_to_be_checked()
    screenshot_of(groups, "groups")
    expect_groups_column(ines, {ADA: "Tuesday lab", BEN: "Tuesday lab", CLEO: "", INES: ""})

    # The batch form allots to the group: only its two members get credits.
    batch = ines.locator("#batch")
    batch.get_by_label("Group Tuesday lab").check()
    batch.get_by_label("Credits each").fill("4.5")
    batch.get_by_role("button", name="Allot", exact=True).click()
    expect(ines.get_by_role("status")).to_have_text("Allotted 9 credits to 2 member(s).")
    expect_wallets(ines, {ADA: "4.5", BEN: "4.5", CLEO: "0", INES: "0"})
    expect_pool(ines, available="91", allocated="9")

    # Removing Ben asks first: said no, nothing is sent; said yes, he is removed.
    removals: list[str] = []
    ines.on("request", lambda r: removals.append(r.url) if r.url.endswith("/remove") else None)
    ines.once("dialog", lambda dialog: dialog.dismiss())
    ines.get_by_role("button", name=f"Remove {BEN[0]}").click()
    ines.once("dialog", lambda dialog: dialog.accept())
    ines.get_by_role("button", name=f"Remove {BEN[0]}").click()
    expect(ines.get_by_role("status")).to_have_text(f"Removed {BEN[0]}.")
    assert len(removals) == 1
    expect(ines.get_by_role("heading", name="Members (3)")).to_be_visible()
    expect(member_row(ines, BEN[1])).to_have_count(0)
    expect(ines.get_by_role("heading", name="Removed members (1)")).to_be_visible()
    removed = ines.locator(f'#removed tr[data-member="{BEN[1]}"]')
    expect(removed.locator("td.num")).to_have_text(["0", "0"])  # left in wallet, used
    # The class is returnable: his 4.5 credits went back to the pool.
    expect_pool(ines, available="95.5", allocated="4.5")
    expect(summary).to_have_text(["Tuesday lab (1)"])

    # His history stays readable from the removed row.
    removed.get_by_role("link", name="History").click()
    expect(ines.get_by_role("heading", name="Ledger of Group class")).to_be_visible()
    expect(ines.locator("#member option:checked")).to_have_text(BEN[0])
    expect(ines.locator("tbody tr[data-kind]")).to_have_count(2)
    expect(ines.locator("tbody tr[data-kind] td:nth-child(2)")).to_have_text(
        ["revocation", "allocation"]
    )
    expect(ines.locator("tbody tr[data-kind] td.num")).to_have_text(["4.5", "4.5"])

    # Brought back: active again, with his history and his group.
    ines.goto(f"/orgs/{org}")
    ines.get_by_role("button", name=f"Bring {BEN[0]} back").click()
    expect(ines.get_by_role("status")).to_have_text(
        f"{BEN[0]} is back, as member with a licensed seat."
    )
    expect(ines.get_by_role("heading", name="Members (4)")).to_be_visible()
    expect(ines.locator("#removed")).to_have_count(0)
    ben = member_row(ines, BEN[1])
    expect(ben.locator('[data-figure="available"]')).to_have_text("0")
    expect(ben.locator('[data-figure="allocated"]')).to_have_text("4.5")
    expect(ben.locator("[data-role]")).to_have_text("member")
    expect(summary).to_have_text(["Tuesday lab (2)"])
    expect_groups_column(ines, {ADA: "Tuesday lab", BEN: "Tuesday lab", CLEO: "", INES: ""})

    # The group is deleted: gone from the page and the batch form; members as they were.
    summary.click()
    ines.once("dialog", lambda dialog: dialog.accept())  # "Delete the group …?"
    groups.get_by_role("button", name="Delete group").click()
    expect(ines.get_by_role("status")).to_have_text("Group deleted; its members are untouched.")
    expect(summary).to_have_count(0)
    expect(batch.get_by_label("Group Tuesday lab")).to_have_count(0)
    expect(ines.get_by_role("heading", name="Members (4)")).to_be_visible()
    expect_groups_column(ines, {ADA: "", BEN: "", CLEO: "", INES: ""})
    expect_wallets(ines, {ADA: "4.5", BEN: "0", CLEO: "0", INES: "0"})
    expect_pool(ines, available="95.5", allocated="4.5")


def screenshot_of(section: Locator, name: str) -> None:
    """Save a screenshot of one part of a page as test-artifacts/screenshots/NAME.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    section.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def expect_pool(page: Page, *, available: str, allocated: str) -> None:
    expect(page.locator('#pool [data-figure="available"]')).to_have_text(available)
    expect(page.locator('#pool [data-figure="allocated"]')).to_have_text(allocated)


def expect_wallets(page: Page, wallets: dict[tuple[str, str], str]) -> None:
    for (_, email), amount in wallets.items():
        expect(member_row(page, email).locator('[data-figure="available"]')).to_have_text(amount)


def expect_groups_column(page: Page, groups: dict[tuple[str, str], str]) -> None:
    """The groups each member row names (beside the member's name and role)."""
    for (_, email), names in groups.items():
        expect(member_row(page, email).locator("[data-groups]")).to_have_text(names)
