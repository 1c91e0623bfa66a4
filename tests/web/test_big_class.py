"""A big school on the class manager, in Chromium: the members table comes a page at a time,
searched, filtered and sorted on the server, and "every matching member" allots to all of
them in one action, not just to the page shown."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from creditpool.demo import fill_school
from creditpool.domain.model import Seat
from creditpool.services import roster
from creditpool.services.roster import RosterFilter
from creditpool.storage.database import create_database_engine
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.server import Server
from tests.web.conftest import People, screenshot
from tests.web.steps import figure, sign_in

MEMBERS = 130  # with the owner, 131: two of them removed, 129 active, three pages of 50


def test_a_big_class_is_searched_sorted_paged_and_allotted_to_as_a_whole(
    people: People, site: Server
) -> None:
    engine = create_database_engine(site.env["CREDITPOOL_DATABASE_URL"])
    uow = UnitOfWork.for_engine(engine)
    school = fill_school(uow, members=MEMBERS)
    licensed = RosterFilter(seat=Seat.LICENSED)
    matching = roster.list_roster(uow, school.org_id, licensed, limit=500)
    assert matching.total > 50  # more than a page
    everyone = roster.list_roster(uow, school.org_id, limit=500).members
    allocated_before = {m.id: m.credits_allocated for m in everyone}
    owner = people.new()
    sign_in(owner, school.owner_email, password=school.owner_password)

    owner.goto(f"/orgs/{school.org_id}")
    expect(owner.get_by_role("heading", name="Members (129)")).to_be_visible()
    rows = owner.locator("#members table.members tbody tr")
    expect(rows).to_have_count(50)
    pager = owner.get_by_role("navigation", name="Pages of members")
    expect(pager).to_contain_text("Page 1 of 3")
    screenshot(owner, "big-class")

    # The last page holds the rest; "First" comes back.
    pager.get_by_role("link", name="Last").click()
    expect(pager).to_contain_text("Page 3 of 3")
    expect(rows).to_have_count(29)
    expect(owner.locator(".roster-count")).to_have_text("101\u2013129 of 129 members")
    pager.get_by_role("link", name="First").click()
    expect(pager).to_contain_text("Page 1 of 3")

    # A search by name, on the server: every row found is a Zane, and nothing pages.
    owner.get_by_label("Search").fill("zane")
    owner.get_by_role("button", name="Show").click()
    expect(owner.locator(".roster-count")).to_contain_text("members matching")
    for name in rows.locator("th[scope=row]").all_text_contents():
        assert name.startswith("Zane")
    expect(owner.get_by_role("navigation", name="Pages of members")).to_have_count(0)
    owner.get_by_role("link", name="Everyone").click()

    # Sorted by what each has available, most first: the figures go down the page.
    owner.locator("#members th a[data-sort=available]").click()
    owner.locator("#members th a[data-sort=available]").click()
    expect(owner.locator("#members th[aria-sort=descending]")).to_contain_text("Available")
    shown = [float(text) for text in rows.locator('[data-figure="available"]').all_text_contents()]
    assert shown == sorted(shown, reverse=True)
    assert shown[0] == 15  # the end-of-term top-up: 10 + 5 - nothing used

    # Every member on a licensed seat, across pages, gets 2 credits in one action.
    owner.get_by_label("Seat", exact=True).select_option("licensed")
    owner.get_by_role("button", name="Show").click()
    expect(owner.locator(".roster-count")).to_have_text(
        f"1\u201350 of {matching.total} members matching"
    )
    every = owner.get_by_label(re.compile("every one of the"))
    expect(every).to_be_hidden()  # until every row of the page is ticked
    owner.get_by_label("Tick every member on this page").check()
    expect(every).to_be_visible()
    every.check()
    available_before = figure(owner, "available")
    owner.get_by_label("Credits each").fill("2")
    owner.get_by_role("button", name="Allot", exact=True).click()

    expect(owner.get_by_role("status")).to_have_text(
        f"Allotted {2 * matching.total} credits to {matching.total} member(s)."
    )
    # Back where it was: the same filter, its first page.
    expect(owner.locator(".roster-count")).to_contain_text(f"of {matching.total} members")
    after = roster.list_roster(uow, school.org_id, limit=500).members
    chosen = {m.id for m in matching.members}
    gained = {m.id: m.credits_allocated - allocated_before[m.id] for m in after}
    assert {m for m, more in gained.items() if more == 2_000_000} == chosen
    assert {m for m, more in gained.items() if more == 0} == set(gained) - chosen
    assert float(figure(owner, "available")) == float(available_before) - 2 * matching.total
    engine.dispose()
