"""The metered-school story: the pool burns per seat, 1 credit a year for each licensed member
and 0.1 for each unlicensed one, nothing for an external one; licensing, unlicensing and pausing
move the burn and the run-out date at once, and a student sees whether its seat is live."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from playwright.sync_api import Page, expect

from tests.web.conftest import People, screenshot
from tests.web.steps import (
    figure,
    invite_link,
    join_by_link,
    member_row,
    open_org,
    record_purchase,
    set_seat,
    sign_in_operator,
    sign_up,
)

OWNER = "petra@hillside.test"
SCHOOL_METERING = "1 credit a year per licensed seat, 0.1 unlicensed"
LICENSED_A_YEAR = Decimal("1")
UNLICENSED_A_YEAR = Decimal("0.1")
SECONDS_A_YEAR = 365 * 24 * 3600
ONE_MICRO = Decimal("0.000001")


def credits_text(amount: Decimal) -> str:
    """An amount as the pages write it: plain decimals, no trailing zeros."""
    text = f"{amount:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def yearly_rate(*, licensed: int, unlicensed: int) -> Decimal:
    """The pool's burn in credits a year for these seats (external ones burn nothing)."""
    return licensed * LICENSED_A_YEAR + unlicensed * UNLICENSED_A_YEAR


def expect_burn(page: Page, org: str, *, licensed: int, unlicensed: int) -> None:
    """Open the class manager and check the burn per day and the run-out date for these seats.

    The clock runs, so the run-out date is computed from the available figure the page shows,
    between the instants just before and just after it was rendered: the date only differs at
    the two ends when the run-out falls on midnight UTC, and then either is right.
    """
    rate = yearly_rate(licensed=licensed, unlicensed=unlicensed)
    per_day = (rate / 365).quantize(ONE_MICRO, rounding=ROUND_HALF_UP)
    before = datetime.now(UTC)
    page.goto(f"/orgs/{org}")
    expect(page.locator('#pool [data-figure="burn"]')).to_have_text(credits_text(per_day))
    available = Decimal(figure(page, "available"))
    after = datetime.now(UTC)
    assert Decimal(0) < available <= Decimal(10)

    def run_out(at: datetime, left: Decimal) -> str:
        seconds = left * SECONDS_A_YEAR / rate
        return (at + timedelta(seconds=float(seconds))).date().isoformat()

    # The page's available is rounded down to a micro-credit: it may be one micro short.
    earliest = run_out(before, available)
    latest = run_out(after + timedelta(seconds=1), available + ONE_MICRO)
    assert figure(page, "runs-out") in {earliest, latest}


def expect_seat_on_me(page: Page, seat: str, live: str) -> None:
    """A student's own page: its seat, and whether the org pays for it right now."""
    page.goto("/me")
    line = page.locator("[data-seat]")
    expect(line).to_contain_text(f"Seat: {seat}")
    expect(line).to_contain_text(live)


def test_seats_set_the_burn_and_the_run_out_date_and_pausing_stops_it(people: People) -> None:
    operator = people.new()
    sign_in_operator(operator)
    owner = people.new()
    sign_up(owner, "Petra Principal", OWNER)
    org = open_org(operator, "Hillside school", OWNER, metering=SCHOOL_METERING)
    record_purchase(operator, "Hillside school", "10", reference="PO-2207")

    # The owner's own seat is licensed and burns from the start.
    expect_burn(owner, org, licensed=1, unlicensed=0)
    assert figure(owner, "burn") == "0.00274"
    settings = owner.locator("#settings")
    expect(settings.get_by_label("Licensed", exact=True)).to_have_value("1")
    expect(settings.get_by_label("Unlicensed", exact=True)).to_have_value("0.1")
    expect(settings.get_by_label("External", exact=True)).to_have_value("0")

    ada, ben = people.new(), people.new()
    link = invite_link(owner)
    join_by_link(ada, link, "Ada Lovelace", "ada@hillside.test")
    join_by_link(ben, link, "Ben Franklin", "ben@hillside.test")
    expect_seat_on_me(ada, "licensed", "live: the org pays for it")

    # Each student joins on a licensed seat: three licensed seats now.
    expect_burn(owner, org, licensed=3, unlicensed=0)
    assert figure(owner, "burn") == "0.008219"
    three_seats_run_out = figure(owner, "runs-out")

    set_seat(owner, "Ada Lovelace", "unlicensed")
    expect(member_row(owner, "ada@hillside.test")).to_contain_text("no access: unlicensed")
    expect_burn(owner, org, licensed=2, unlicensed=1)
    assert figure(owner, "burn") == "0.005753"
    assert figure(owner, "runs-out") > three_seats_run_out
    expect_seat_on_me(ada, "unlicensed", "not live (unlicensed seat)")

    set_seat(owner, "Ben Franklin", "external")
    expect(member_row(owner, "ben@hillside.test")).to_contain_text("no access: external")
    expect_burn(owner, org, licensed=1, unlicensed=1)
    assert figure(owner, "burn") == "0.003014"
    expect_seat_on_me(ben, "external", "not live (external seat)")

    set_seat(owner, "Ada Lovelace", "licensed")
    expect(member_row(owner, "ada@hillside.test")).not_to_contain_text("no access")
    expect_burn(owner, org, licensed=2, unlicensed=0)
    assert figure(owner, "burn") == "0.005479"
    screenshot(owner, "metered-dashboard")
    expect_seat_on_me(ada, "licensed", "live: the org pays for it")

    # Pausing stops all burning: no run-out date, and no seat is live.
    owner.goto(f"/orgs/{org}")
    owner.get_by_role("button", name="Pause the org").click()
    expect(owner.get_by_role("status")).to_have_text("Paused: nothing burns and usage is refused.")
    expect(owner.get_by_role("heading", name="Hillside school")).to_contain_text("paused")
    expect(owner.locator('#pool [data-figure="burn"]')).to_have_text("0")
    expect(owner.locator('#pool [data-figure="runs-out"]')).to_have_text("never at this rate")
    screenshot(owner, "metered-paused")
    expect_seat_on_me(ada, "licensed", "not live (org paused)")

    owner.get_by_role("button", name="Resume the org").click()
    expect(owner.get_by_role("status")).to_have_text("Resumed.")
    expect(owner.get_by_role("heading", name="Hillside school")).not_to_contain_text("paused")
    expect_burn(owner, org, licensed=2, unlicensed=0)
    expect_seat_on_me(ada, "licensed", "live: the org pays for it")
    screenshot(ada, "metered-me")
