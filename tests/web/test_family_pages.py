"""A district funds its schools: its owner adds two schools from the district's class manager,
sees them side by side in one table, allots credits to one and takes some back, watches the
figures move, and follows the link into the school, which says where its credits come from.
The operator's console shows the family as a tree."""

from __future__ import annotations

from playwright.sync_api import Locator, Page, expect

from tests.web.conftest import People, screenshot
from tests.web.steps import open_org, record_purchase, sign_in_operator, sign_up

DISTRICT = "Riverside district"
OWNER = "dana@riverside.test"
SCHOOLS = {"Northside school": "nora@northside.test", "Southside school": "sam@southside.test"}


def add_school(page: Page, name: str, owner_email: str) -> None:
    """On the district's class manager, add a school for a principal who has signed up (and
    not confirmed their address yet: the form asks to vouch for them)."""
    children = page.locator("#children")
    children.get_by_label("Add a child org").fill(name)
    children.get_by_label("Its owner's e-mail").fill(owner_email)
    children.get_by_role("button", name="Add the child org").click()
    expect(page.locator("#child-owner-unconfirmed")).to_contain_text(owner_email)
    page.get_by_label(f"I know who {owner_email} is").check()
    page.get_by_role("button", name="Add the child org").click()
    expect(page.get_by_role("status")).to_have_text(f"Added {name}, owned by {owner_email}.")


def school_row(page: Page, name: str) -> Locator:
    """The district's table row of one school."""
    return page.locator(f'#children tr[data-child="{name}"]')


def pool_available(page: Page) -> Locator:
    return page.locator('#pool [data-figure="available"]')


def test_a_district_allots_to_a_school_takes_some_back_and_the_school_sees_the_source(
    people: People,
) -> None:
    operator = people.new()
    sign_in_operator(operator)
    owner = people.new()
    sign_up(owner, "Dana District", OWNER)
    for principal in SCHOOLS.values():
        sign_up(people.new(), principal.split("@")[0].title(), principal)
    district = open_org(operator, DISTRICT, OWNER)
    record_purchase(operator, DISTRICT, "500", reference="PO-77")

    owner.goto(f"/orgs/{district}")
    for name in sorted(SCHOOLS, reverse=True):  # added out of order, listed by name
        add_school(owner, name, SCHOOLS[name])
    rows = owner.locator("#children tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.locator("th a")).to_have_text(["Northside school", "Southside school"])
    north = school_row(owner, "Northside school")
    expect(north.locator('[data-figure="available"]')).to_have_text("0")
    expect(north.locator('[data-figure="members"]')).to_have_text("1")
    expect(north.locator('[data-figure="runs-out"]')).to_have_text("never at this rate")
    expect(north.get_by_label("Credits to take back from Northside school")).to_have_attribute(
        "placeholder", "all available if empty"
    )

    north.get_by_label("Credits to allot to Northside school").fill("100")
    north.get_by_role("button", name="Allot to Northside school").click()
    expect(owner.get_by_role("status")).to_have_text("Allotted 100 credits to Northside school.")
    expect(north.locator('[data-figure="available"]')).to_have_text("100")
    expect(pool_available(owner)).to_have_text("400")

    north.get_by_label("Credits to take back from Northside school").fill("30")
    north.get_by_role("button", name="Take back from Northside school").click()
    expect(owner.get_by_role("status")).to_have_text("Took back 30 credits from Northside school.")
    expect(north.locator('[data-figure="available"]')).to_have_text("70")
    expect(school_row(owner, "Southside school").locator('[data-figure="available"]')).to_have_text(
        "0"
    )
    expect(pool_available(owner)).to_have_text("430")
    expect(owner.locator("#children tfoot")).to_contain_text("All 2 together")
    owner.evaluate("window.scrollTo(0, 0)")  # the confirmation back in its place, above
    screenshot(owner, "family-children")

    # Asking for more than the district has: the reason in the school's row, nothing moves.
    north.get_by_label("Credits to allot to Northside school").fill("1000")
    north.get_by_role("button", name="Allot to Northside school").click()
    expect(north.get_by_role("alert")).to_be_visible()
    expect(north.locator('[data-figure="available"]')).to_have_text("70")
    expect(pool_available(owner)).to_have_text("430")

    north.get_by_role("link", name="Northside school").click()
    expect(owner.get_by_role("heading", level=1)).to_have_text("Northside school")
    source = owner.locator("#family-source")
    expect(source.get_by_role("heading")).to_have_text(f"Credits from {DISTRICT}")
    expect(source.locator('[data-figure="received"]')).to_have_text("100")
    expect(source.locator('[data-figure="given-back"]')).to_have_text("30")
    expect(pool_available(owner)).to_have_text("70")
    screenshot(owner, "family-school")
    source.get_by_role("link", name=DISTRICT).click()
    expect(owner.get_by_role("heading", level=1)).to_have_text(DISTRICT)

    # The operator sees the family as a tree: the schools indented under the district.
    operator.goto("/operator")
    names = operator.locator("tr[data-org] th[data-depth]")
    expect(names).to_have_count(3)
    expect(names).to_contain_text([DISTRICT, "Northside school", "Southside school"])
    depths = [names.nth(index).get_attribute("data-depth") for index in range(3)]
    assert depths == ["1", "2", "2"]
