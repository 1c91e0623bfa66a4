"""A weekly budget in the browser: the owner sets automatic allocation to 10 credits a week in
Paris, with the leftover going back, on the settings form; a student who joins sees on their
own page what can still come in this week and when the week starts again, at midnight on
Monday in Paris. A bad time zone is refused beside the form and changes nothing."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from playwright.sync_api import expect

from tests.support.server import Server
from tests.web.conftest import People, screenshot
from tests.web.steps import invite_link, join_by_link, open_org, sign_in_operator, sign_up


def test_the_owner_sets_a_weekly_budget_and_the_student_sees_it(
    people: People, site: Server
) -> None:
    owner = people.new()
    sign_up(owner, "Olga Owner", "olga@weekly.test")
    operator = people.new()
    sign_in_operator(operator)
    org = open_org(operator, "Weekly class", "olga@weekly.test")

    owner.goto(f"/orgs/{org}")
    settings = owner.locator("#settings")
    # An unknown zone is refused with its reason, and nothing is saved.
    settings.get_by_label("Top members up on demand").check()
    settings.get_by_label("Cap per member (a multiple of the bundle)").fill("10")
    settings.get_by_label("Budget period: the cap counts").select_option("week")
    settings.get_by_label("Time zone of the period's start (an IANA name)").fill("Mars/Olympus")
    settings.get_by_role("button", name="Save settings").click()
    expect(owner.locator("#settings")).to_contain_text("unknown time zone 'Mars/Olympus'")
    owner.goto(f"/orgs/{org}")
    expect(owner.get_by_label("Budget period: the cap counts")).to_have_value("")

    settings.get_by_label("Top members up on demand").check()
    settings.get_by_label("Bundle (credits)").fill("5")
    settings.get_by_label("Cap per member (a multiple of the bundle)").fill("10")
    settings.get_by_label("Budget period: the cap counts").select_option("week")
    settings.get_by_label(re.compile("what is left of members' automatic credits")).check()
    settings.get_by_label("Time zone of the period's start (an IANA name)").fill("Europe/Paris")
    settings.get_by_role("button", name="Save settings").click()
    expect(owner.get_by_role("status")).to_contain_text("Settings saved.")
    expect(owner.get_by_label("Budget period: the cap counts")).to_have_value("week")
    expect(owner.get_by_label("Time zone of the period's start (an IANA name)")).to_have_value(
        "Europe/Paris"
    )
    expect(
        owner.get_by_label(re.compile("what is left of members' automatic credits"))
    ).to_be_checked()
    screenshot(owner, "weekly-budget-settings")

    student = people.new()
    join_by_link(student, invite_link(owner), "Sam Student", "sam@weekly.test")
    student.goto("/me")
    budget = student.locator("[data-budget]")
    expect(budget).to_contain_text("10 more credits can come in this week (0 of 10 so far)")
    expect(budget).to_contain_text("(Europe/Paris), when what is left of this week's top-ups")
    # The week starts again at 00:00 on a Monday, on Paris's clocks.
    resets = student.locator("[data-resets]")
    expect(resets).to_have_text(re.compile(r"^Monday \d{1,2} [A-Z][a-z]+ \d{4}, 00:00$"))
    instant = datetime.fromisoformat(resets.get_attribute("datetime") or "")
    local = instant.astimezone(ZoneInfo("Europe/Paris"))
    assert (local.weekday(), local.hour, local.minute) == (0, 0, 0)
    screenshot(student, "weekly-budget-me")
