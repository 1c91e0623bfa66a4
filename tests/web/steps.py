"""Steps the stories share, written as a person does them: fill labelled fields, press
buttons by their names, read figures off the page."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

from tests.web.conftest import OPERATOR_EMAIL, PASSWORD


def sign_up(page: Page, name: str, email: str, *, password: str = PASSWORD) -> None:
    """Create an account on the sign-up page and land signed in."""
    page.goto("/sign-up")
    page.get_by_label("Your name").fill(name)
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("button", name=f"Sign out {name}")).to_be_visible()


def sign_in(page: Page, email: str, *, password: str = PASSWORD) -> None:
    """Sign in from the sign-in page."""
    page.goto("/sign-in")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name=re.compile(r"^Sign out"))).to_be_visible()


def sign_in_operator(page: Page) -> None:
    sign_in(page, OPERATOR_EMAIL)


def open_org(
    page: Page, name: str, owner_email: str, *, metering: str = "", owner_confirmed: bool = False
) -> str:
    """As the signed-in operator, open an org for `owner_email`; return the org's id.

    An owner who has not confirmed their e-mail address takes a second click, vouching for them.
    """
    page.goto("/operator")
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Owner's e-mail").fill(owner_email)
    if metering:
        page.get_by_label("Seat metering").select_option(metering)
    page.get_by_role("button", name="Open the org").click()
    if not owner_confirmed:
        expect(page.locator("#owner-unconfirmed")).to_contain_text(owner_email)
        page.get_by_label(f"I know who {owner_email} is").check()
        page.get_by_role("button", name="Open the org").click()
    state = "confirmed" if owner_confirmed else "not confirmed"
    expect(page.get_by_role("status")).to_contain_text(
        f"Opened {name} for {owner_email} (e-mail {state})"
    )
    link = page.locator(f'tr[data-org="{name}"] a').first
    href = link.get_attribute("href") or ""
    return href.removeprefix("/orgs/")


def record_purchase(page: Page, org_name: str, amount: str, reference: str = "") -> None:
    """As the signed-in operator, record credits bought by an org."""
    page.goto("/operator")
    page.get_by_label(f"Credits bought by {org_name}").fill(amount)
    if reference:
        page.locator(f'tr[data-org="{org_name}"]').get_by_label("Reference").fill(reference)
    page.locator(f'tr[data-org="{org_name}"]').get_by_role("button", name="Record").click()
    expect(page.get_by_role("status")).to_contain_text(f"Recorded a purchase of {amount}")


def figure(page: Page, name: str) -> str:
    """The text of a figure on the page (`data-figure="NAME"`), trimmed."""
    return (page.locator(f'[data-figure="{name}"]').first.text_content() or "").strip()


def member_row(page: Page, email: str) -> Locator:
    """The class manager's row for one member."""
    return page.locator(f'#members tr[data-member="{email}"]')


def invite_link(page: Page) -> str:
    """The class manager's invite link, as a student would be sent it."""
    return page.locator("#invite-link").input_value()


def join_by_link(page: Page, link: str, name: str, email: str) -> None:
    """As a newcomer, open the invite link, create an account there and join."""
    page.goto(link)
    page.get_by_label("Your name").fill(name)
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account and join").click()
    expect(page.get_by_role("status")).to_contain_text(f"You joined. Welcome, {name}.")


def member_id(page: Page, email: str) -> str:
    """The member id of a row on the class manager (its `id` is `member-ID`)."""
    return (member_row(page, email).get_attribute("id") or "").removeprefix("member-")


def set_seat(page: Page, name: str, seat: str) -> None:
    """On the class manager, choose a member's seat in its row and save it."""
    select = page.get_by_label(f"Seat of {name}")
    select.select_option(seat)
    page.get_by_role("button", name=f"Save {name}'s seat").click()
    expect(page.get_by_role("status")).to_have_text(f"{name}'s seat is now {seat}.")
    expect(page.get_by_label(f"Seat of {name}")).to_have_value(seat)
