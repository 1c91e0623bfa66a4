"""Who sees what: sign-in walls, the student's own page, and another org's pages."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.web.conftest import People, screenshot
from tests.web.steps import open_org, sign_in_operator, sign_up


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
    open_org(operator, "Render class", "ines@school.test")

    for path in (f"/orgs/{theirs}", f"/orgs/{theirs}/ledger", f"/orgs/{theirs}/reset"):
        response = mine_owner.goto(path)
        assert response is not None
        assert response.status == 404, path
        expect(mine_owner.get_by_role("heading", name="Not found")).to_be_visible()
    screenshot(mine_owner, "not-found")
    # Its owner does see it.
    olga.goto(f"/orgs/{theirs}")
    expect(olga.get_by_role("heading", name="Other studio")).to_be_visible()
