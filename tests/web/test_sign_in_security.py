"""Signing in safely, in Chromium against the real server and a real SMTP server: a password
reset through the mail, sessions that end on the server (a copied cookie is refused after
signing out), the account page, a sign-up that reveals no account, and the lock-out page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.server import Server
from tests.support.smtp import Received, SmtpServer, smtp_server
from tests.web.conftest import PASSWORD, People, operator_site, screenshot
from tests.web.steps import sign_in, sign_up

ADA = ("Ada Lovelace", "ada@example.test")
_LINK = re.compile(r"\bhttps?://\S+/(?:password-reset|verify-email)/\S+")


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


def mail_about(smtp: SmtpServer, address: str, subject: str, timeout: float = 15.0) -> Received:
    """Wait for the first message to `address` whose subject has `subject`; return it."""

    def found() -> Received | None:
        return next(
            (
                received
                for received in smtp.received
                if address in received.recipients and subject in str(received.message["Subject"])
            ),
            None,
        )

    with smtp.collector.arrived:
        message = smtp.collector.arrived.wait_for(found, timeout=timeout)
    assert message is not None, f"no mail about {subject!r} to {address} within {timeout} s"
    return message


def link_in(received: Received) -> str:
    [link] = _LINK.findall(received.text)
    return str(link)


def expect_signed_out(page: Page) -> None:
    page.goto("/me")
    expect(page).to_have_url(re.compile(r"/sign-in\?next="))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_a_forgotten_password_is_reset_through_the_mail(people: People, smtp: SmtpServer) -> None:
    ada = people.new()
    sign_up(ada, *ADA)
    other_browser = people.new()
    sign_in(other_browser, ADA[1])

    visitor = people.new()
    visitor.goto("/sign-in")
    visitor.get_by_role("link", name="Forgot your password?").click()
    visitor.get_by_label("E-mail").fill(ADA[1])
    visitor.get_by_role("button", name="Send the link").click()
    expect(visitor.get_by_role("status")).to_contain_text("If an account exists")
    # An unknown address gets the very same answer.
    visitor.goto("/password-reset")
    visitor.get_by_label("E-mail").fill("nobody@example.test")
    visitor.get_by_role("button", name="Send the link").click()
    expect(visitor.get_by_role("status")).to_contain_text("If an account exists")

    received = mail_about(smtp, ADA[1], "Reset your creditpool password")
    link = link_in(received)
    assert "/password-reset/" in link
    visitor.goto(link)
    expect(visitor.get_by_text(f"For {ADA[1]}.")).to_be_visible()
    visitor.get_by_label("New password").fill("a password from the mail")
    screenshot(visitor, "password-reset")
    visitor.get_by_role("button", name="Set the new password").click()
    expect(visitor.get_by_role("status")).to_contain_text("Your new password is set")

    # Every browser signed in as Ada was signed out; the old password no longer works.
    expect_signed_out(ada)
    expect_signed_out(other_browser)
    visitor.goto("/sign-in")
    visitor.get_by_label("E-mail").fill(ADA[1])
    visitor.get_by_label("Password").fill(PASSWORD)
    visitor.get_by_role("button", name="Sign in").click()
    expect(visitor.get_by_role("alert")).to_contain_text("Wrong e-mail or password")
    sign_in(visitor, ADA[1], password="a password from the mail")
    # The link worked once.
    visitor.goto(link)
    expect(visitor.get_by_role("heading", name="Not found")).to_be_visible()


def test_a_copied_cookie_is_refused_once_its_session_is_signed_out(
    people: People, site: Server
) -> None:
    ada = people.new()
    sign_up(ada, *ADA)
    copied = ada.context.cookies()
    assert any(cookie["name"] == "creditpool_session" for cookie in copied)

    thief = people.new()
    thief.context.add_cookies(copied)
    thief.goto("/me")
    expect(thief.get_by_role("button", name=f"Sign out {ADA[0]}")).to_be_visible()

    ada.get_by_role("button", name=f"Sign out {ADA[0]}").click()
    expect(ada.get_by_role("status")).to_contain_text("Signed out")

    replay = people.new()
    replay.context.add_cookies(copied)
    expect_signed_out(replay)
    expect_signed_out(thief)


def test_the_account_page_confirms_the_address_changes_the_password_and_signs_out_everywhere(
    people: People, smtp: SmtpServer
) -> None:
    ada = people.new()
    sign_up(ada, *ADA)
    laptop = people.new()
    sign_in(laptop, ADA[1])

    ada.get_by_role("link", name="Account").click()
    expect(ada.locator('[data-figure="email-status"]')).to_have_text("not confirmed yet")
    ada.get_by_role("button", name="Send the confirmation link again").click()
    expect(ada.get_by_role("status")).to_contain_text("A link to confirm your address")
    confirmation = mail_about(smtp, ADA[1], "Confirm your e-mail address")
    ada.goto(link_in(confirmation))
    expect(ada.get_by_role("status")).to_contain_text("your e-mail address is confirmed")
    expect(ada.locator('[data-figure="email-status"]')).to_have_text("confirmed")

    # A wrong current password changes nothing and says so.
    ada.get_by_label("Current password").fill("not my password")
    ada.get_by_label("New password").fill("a newer password")
    ada.get_by_role("button", name="Change password").click()
    expect(ada.get_by_role("alert")).to_contain_text("The current password is wrong")
    ada.get_by_label("Current password").fill(PASSWORD)
    ada.get_by_label("New password").fill("a newer password")
    screenshot(ada, "account")
    ada.get_by_role("button", name="Change password").click()
    expect(ada.get_by_role("status")).to_contain_text("Your password is changed")
    # This browser stays signed in; the laptop is signed out.
    ada.goto("/me")
    expect(ada.get_by_role("button", name=f"Sign out {ADA[0]}")).to_be_visible()
    expect_signed_out(laptop)

    sign_in(laptop, ADA[1], password="a newer password")
    ada.goto("/account")
    ada.get_by_role("button", name="Sign out everywhere").click()
    expect(ada.get_by_role("status")).to_contain_text("signed out in every browser")
    expect_signed_out(ada)
    expect_signed_out(laptop)


def test_signing_up_with_a_taken_address_reveals_nothing_more(people: People) -> None:
    ada = people.new()
    sign_up(ada, *ADA)
    stranger = people.new()
    stranger.goto("/sign-up")
    stranger.get_by_label("Your name").fill("Someone Else")
    stranger.get_by_label("E-mail").fill("ADA@example.test")
    stranger.get_by_label("Password").fill("another password")
    stranger.get_by_role("button", name="Create account").click()
    expect(stranger.get_by_role("alert")).to_have_text(
        "This address cannot be used to sign up. If it is yours, sign in or reset your password."
    )
    expect(stranger.get_by_label("E-mail")).to_have_value("")
    assert "ada@example.test" not in stranger.content().lower()


def test_too_many_wrong_passwords_show_when_to_try_again(
    browser: Browser, tmp_path: Path, migrated_sqlite: Path
) -> None:
    limits = {"CREDITPOOL_RATE_LIMITS": "on", "CREDITPOOL_FAILED_PASSWORD_LIMIT": "2"}
    with operator_site(tmp_path, migrated_sqlite, environment=limits) as limited:
        page = browser.new_page(base_url=limited.url)
        try:
            for _ in range(2):
                page.goto("/sign-in")
                page.get_by_label("E-mail").fill("operator@vendor.test")
                page.get_by_label("Password").fill("a wrong guess")
                page.get_by_role("button", name="Sign in").click()
                expect(page.get_by_role("alert")).to_contain_text("Wrong e-mail or password")
            page.goto("/sign-in")
            page.get_by_label("E-mail").fill("operator@vendor.test")
            page.get_by_label("Password").fill(PASSWORD)  # right, but the address is locked
            with page.expect_response(re.compile(r"/sign-in")) as answer:
                page.get_by_role("button", name="Sign in").click()
            assert answer.value.status == 429
            retry_after = int(answer.value.headers["retry-after"])
            assert 0 < retry_after <= 15 * 60
            expect(page.get_by_role("heading", name="Too many attempts")).to_be_visible()
            expect(page.get_by_role("alert")).to_contain_text("Try again in")
            screenshot(page, "rate-limited")
        finally:
            page.close()
