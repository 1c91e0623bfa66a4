"""Buying credits in the browser: the owner asks for credits on the class manager, the operator
approves one request and declines another with a reason in the console, and the owner sees
the outcome; with Stripe configured (a local stand-in of its API), the owner pays by card and
the pool is credited when Stripe's signed event arrives."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.server import Server
from tests.support.stripe import (
    PAGE,
    StripeStandIn,
    session_event,
    stripe_signature,
    stripe_stand_in,
)
from tests.web.conftest import People, operator_site, screenshot
from tests.web.steps import figure, open_org, sign_in_operator, sign_up

WEBHOOK_SECRET = "whsec_browser_test_secret"


def _ask(owner: Page, amount: str, note: str) -> None:
    buy = owner.locator("#buy")
    buy.get_by_label("Credits", exact=True).fill(amount)
    buy.get_by_label("Note for the operator").fill(note)
    buy.get_by_role("button", name="Request credits").click()
    expect(owner.get_by_role("status")).to_contain_text(f"Asked for {amount} credits")


def test_the_owner_asks_and_the_operator_approves_or_declines(people: People) -> None:
    owner = people.new()
    sign_up(owner, "Olga Owner", "olga@studio.test")
    operator = people.new()
    sign_in_operator(operator)
    org = open_org(operator, "Studio 9", "olga@studio.test")

    owner.goto(f"/orgs/{org}")
    expect(owner.locator("#buy").get_by_role("button", name="Pay by card")).to_have_count(0)
    _ask(owner, "40", "spring term")
    _ask(owner, "15", "extra renders")
    expect(owner.locator('#buy td[data-status="pending"]')).to_have_count(2)
    assert figure(owner, "available") == "0"
    screenshot(owner, "buy-credits-asked")

    operator.goto("/operator")
    queue = operator.locator("#requests")
    expect(queue.locator("tr[data-request]")).to_have_count(2)
    first, second = queue.locator("tr[data-request]").all()
    first.get_by_label("Reference for Studio 9's purchase").fill("INV-2026-7")
    screenshot(operator, "operator-purchase-requests")
    first.get_by_role("button", name="Approve 40 credits for Studio 9").click()
    expect(operator.get_by_role("status")).to_contain_text("Approved: 40 credits are in the pool.")
    second = operator.locator("#requests tr[data-request]")
    second.get_by_label("Why Studio 9's request is declined").fill("one request a term")
    second.get_by_role("button", name="Decline 15 credits for Studio 9").click()
    expect(operator.get_by_role("status")).to_contain_text("Declined the request for 15 credits.")
    expect(operator.locator("#requests")).to_contain_text("No request waits for a decision.")
    row = operator.locator('tr[data-org="Studio 9"]')
    expect(row.locator('[data-figure="available"]')).to_have_text("40")

    owner.reload()
    expect(owner.locator('#buy td[data-status="approved"]')).to_contain_text("in the pool")
    expect(owner.locator('#buy td[data-status="declined"]')).to_contain_text("one request a term")
    assert figure(owner, "available") == "40"
    screenshot(owner, "buy-credits-decided")


@pytest.fixture
def stripe() -> Iterator[StripeStandIn]:
    with stripe_stand_in() as stand_in:
        yield stand_in


@pytest.fixture
def paying_people(
    browser: Browser, tmp_path: Path, migrated_sqlite: Path, stripe: StripeStandIn
) -> Iterator[tuple[People, Server]]:
    """A server with Stripe Checkout pointed at the stand-in."""
    environment = {
        "CREDITPOOL_STRIPE_SECRET_KEY": "sk_test_browser",
        "CREDITPOOL_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "CREDITPOOL_CREDIT_PRICE": "50",
        "CREDITPOOL_STRIPE_API_BASE": stripe.url,
    }
    with operator_site(tmp_path, migrated_sqlite, environment=environment) as server:
        crowd = People(browser, server, [])
        yield crowd, server
        for context in crowd.contexts:
            context.close()


def test_the_owner_pays_by_card_and_stripe_credits_the_pool_once(
    paying_people: tuple[People, Server], stripe: StripeStandIn
) -> None:
    people, server = paying_people
    owner = people.new()
    sign_up(owner, "Paul Payer", "paul@studio.test")
    operator = people.new()
    sign_in_operator(operator)
    org = open_org(operator, "Studio 10", "paul@studio.test")

    owner.goto(f"/orgs/{org}")
    buy = owner.locator("#buy")
    expect(buy).to_contain_text("0.50 USD a credit")
    buy.get_by_label("Whole credits").fill("12")
    buy.get_by_role("button", name="Pay by card").click()
    expect(owner.locator("main")).to_contain_text("12 credits for 6.00 USD")
    pay = owner.get_by_role("link", name="Continue to payment")
    expect(pay).to_have_attribute("href", PAGE + "cs_test_0001")
    screenshot(owner, "buy-credits-checkout")
    assert stripe.calls[0].form["line_items[0][quantity]"] == "12"

    # Stripe reports the payment (twice: it retries), and sends the owner back.
    event = session_event("checkout.session.completed", "cs_test_0001", org)
    with server.client() as http:
        for _ in range(2):
            answered = http.post(
                "/webhooks/stripe",
                content=event,
                headers={
                    "content-type": "application/json",
                    "Stripe-Signature": stripe_signature(event, WEBHOOK_SECRET),
                },
            )
            assert answered.status_code == 200, answered.text
    owner.goto(f"/orgs/{org}/checkout/done")
    expect(owner.get_by_role("status")).to_contain_text("Payment made")
    assert figure(owner, "available") == "12"
