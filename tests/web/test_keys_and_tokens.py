"""Keys and tokens in the browser: the operator console's operators and operator keys, opening
an org for an owner whose address is not confirmed, a person's API tokens, and pages that show
a secret kept by no cache."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.support.server import Server, running_server
from tests.web.conftest import OPERATOR_EMAIL, PASSWORD, People, screenshot
from tests.web.steps import open_org, sign_in, sign_in_operator, sign_up

ACCOUNT_LINE = re.compile(r"^(\S+@\S+)  (\S+)$", re.MULTILINE)  # the demo's "e-mail  password"
DEMO_OPERATOR = "operator@demo.creditpool.test"


@pytest.fixture
def demo_people(
    browser: Browser, tmp_path: Path, migrated_sqlite: Path
) -> Iterator[tuple[People, dict[str, str]]]:
    """`creditpool serve --demo` on an empty database, with the passwords it printed, by
    e-mail."""
    with running_server(tmp_path, "--demo", template=migrated_sqlite) as server:
        crowd = People(browser, server, [])
        yield crowd, dict(ACCOUNT_LINE.findall(server.stdout()))
        for context in crowd.contexts:
            context.close()


def test_an_owner_whose_address_is_not_confirmed_takes_a_second_click(
    demo_people: tuple[People, dict[str, str]],
) -> None:
    people, passwords = demo_people
    operator = people.new()
    sign_in(operator, DEMO_OPERATOR, password=passwords[DEMO_OPERATOR])

    # The demo's people have confirmed addresses (made up, but the demo vouches): one click.
    open_org(operator, "Quick class", "iris@demo.creditpool.test", owner_confirmed=True)

    newcomer = people.new()
    sign_up(newcomer, "Olga Owner", "olga@other.test")
    operator.goto("/operator")
    operator.get_by_label("Name", exact=True).fill("Olga's studio")
    operator.get_by_label("Owner's e-mail").fill("olga@other.test")
    operator.get_by_role("button", name="Open the org").click()
    warning = operator.locator("#owner-unconfirmed")
    expect(warning).to_contain_text("olga@other.test has not confirmed this e-mail address")
    expect(operator.locator('tr[data-org="Olga\'s studio"]')).to_have_count(0)  # not yet
    # The form kept what was typed; without the tick the browser will not send it.
    expect(operator.get_by_label("Name", exact=True)).to_have_value("Olga's studio")
    operator.get_by_role("button", name="Open the org").click()
    expect(operator.locator('tr[data-org="Olga\'s studio"]')).to_have_count(0)
    screenshot(operator, "operator-unconfirmed-owner")
    operator.get_by_label("I know who olga@other.test is").check()
    operator.get_by_role("button", name="Open the org").click()
    expect(operator.get_by_role("status")).to_contain_text(
        "Opened Olga's studio for olga@other.test (e-mail not confirmed)"
    )
    expect(operator.locator('tr[data-org="Olga\'s studio"]')).to_have_count(1)


def test_the_console_revokes_operator_keys_and_takes_operators_back(
    people: People, site: Server
) -> None:
    created = site.cli("keys", "create", "--operator", "--name", "billing").strip()
    key_id, key = created.split(": ", 1)
    site.cli("users", "create", "walt@vendor.test", "--name", "Walt", "--password", PASSWORD)
    site.cli("users", "grant-operator", "walt@vendor.test")
    with site.client() as http:
        assert http.get("/orgs", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        walt = http.post("/tokens", json={"email": "walt@vendor.test", "password": PASSWORD})
        walt_token = {"Authorization": f"Bearer {walt.json()['token']}"}
        assert http.get("/orgs", headers=walt_token).status_code == 200

    operator = people.new()
    sign_in_operator(operator)
    operator.goto("/operator")
    row = operator.locator(f'tr[data-key="{key_id}"]')
    expect(row).to_contain_text("billing")
    expect(row).not_to_contain_text("never")  # it was used just now
    # Nobody can take their own powers back here; everyone else has the button.
    expect(operator.locator(f'li[data-operator="{OPERATOR_EMAIL}"]')).to_contain_text("(you)")
    expect(
        operator.get_by_role("button", name=f"Take back operator powers of {OPERATOR_EMAIL}")
    ).to_have_count(0)
    screenshot(operator, "operator-console-keys")

    row.get_by_role("button", name=re.compile("^Revoke operator key billing")).click()
    expect(operator.get_by_role("status")).to_contain_text("Operator key billing revoked")
    expect(operator.locator(f'tr[data-key="{key_id}"]')).to_contain_text("revoked")
    operator.get_by_role("button", name="Take back operator powers of walt@vendor.test").click()
    expect(operator.get_by_role("status")).to_contain_text("walt@vendor.test is no longer")
    expect(operator.locator('li[data-operator="walt@vendor.test"]')).to_have_count(0)

    with site.client() as http:
        assert http.get("/orgs", headers={"Authorization": f"Bearer {key}"}).status_code == 401
        opened = http.post(
            "/orgs", headers=walt_token, json={"name": "X", "owner_email": "walt@vendor.test"}
        )
        assert opened.status_code == 403, opened.text


def test_a_person_sees_and_revokes_their_api_tokens_and_new_secrets_are_not_cached(
    people: People, site: Server
) -> None:
    owner = people.new()
    sign_up(owner, "Ines Instructor", "ines@school.test")
    with site.client() as http:
        issued = [
            http.post("/tokens", json={"email": "ines@school.test", "password": PASSWORD, **extra})
            for extra in ({"name": "CI runner", "expires_in": 3600}, {})
        ]
    ci, plain = (answer.json() for answer in issued)

    owner.goto("/account/tokens")
    rows = owner.locator("tr[data-token]")
    expect(rows).to_have_count(2)
    expect(owner.locator(f'tr[data-token="{ci["id"]}"]')).to_contain_text("CI runner")
    expect(owner.locator(f'tr[data-token="{plain["id"]}"]')).to_contain_text("unnamed")
    expect(owner.locator("main")).not_to_contain_text(ci["token"].split(".")[-1])
    screenshot(owner, "account-tokens")
    owner.locator(f'tr[data-token="{ci["id"]}"]').get_by_role(
        "button", name=re.compile("^Revoke")
    ).click()
    expect(owner.get_by_role("status")).to_contain_text("Token revoked")
    expect(rows).to_have_count(1)
    with site.client() as http:
        for token, status in ((ci["token"], 401), (plain["token"], 200)):
            answer = http.get("/me", headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == status, answer.text

    # The page that shows a new org API key once tells caches not to keep it.
    operator = people.new()
    sign_in_operator(operator)
    org = open_org(operator, "Render class", "ines@school.test")
    owner.goto(f"/orgs/{org}")
    owner.get_by_label("Key name").fill("render farm")
    with owner.expect_response(lambda r: r.request.method == "POST") as made:
        owner.get_by_role("button", name="Create key").click()
    assert made.value.status == 200
    assert made.value.headers["cache-control"] == "no-store"
    expect(owner.get_by_label("New API key")).to_have_value(re.compile(r"^cpk\."))
