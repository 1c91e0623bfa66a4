"""Lots on the pages, in process: the class manager's "Credits by lot" table in spending order
and its "expires soon" notice, a member's own credits that expire on My credits, and who sees
what. The world's org bought 100 credits on 1 January 2026 (the clock's start): its paid lot,
priority 50, never expiring. Its clocks are set to Paris, an hour ahead of UTC in January.

The story most tests share: a trial of 20 credits (priority 10, expiring on 6 January at 00:00
UTC, 01:00 in Paris); 15 allotted to Student 1 and 10 to Student 2, the trial first (so 5 of
Student 2's come from the paid lot); Student 1 renders for 3; a hold of 2 on Student 2's wallet
keeps 2 of the trial (kept until the hold ends, they are not announced as expiring). The lots
then:

    lot    priority  credits  in_pool  in_wallets  held  used  expired  expires (Paris)
    trial  10        20       0        17          2     3     0        6 January, 01:00
    paid   50        100      95       5           0     0     0        never
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event

from tests.api.support import OPERATOR_KEY, World, signed_in_browser
from tests.support.clock import START, FakeClock

TRIAL_ENDS = START + timedelta(days=5)
TRIAL_ENDS_IN_PARIS = "Tuesday 6 January 2026, 01:00"


def _signed_in(app: FastAPI, world: World, token: str) -> TestClient:
    """A browser-like client (its own cookies) signed in as the holder of `token`."""
    email = world.api.call("GET", "/me", token=token).json()["user"]["email"]
    return signed_in_browser(app, email)


def _ok(response: object) -> None:
    status = getattr(response, "status_code", None)
    assert status in (200, 201), getattr(response, "text", "")


def _buy(world: World, amount: str, **terms: object) -> None:
    """The operator records a purchase of the world's org, a new lot of these terms."""
    body = {"amount": amount, **terms}
    _ok(world.api.call("POST", f"/orgs/{world.org_id}/purchases", token=OPERATOR_KEY, json=body))


def _trial_story(world: World) -> None:
    """The module's story: the trial bought, allotted, partly used and held."""
    api, org = world.api, world.org_id
    settings = {"timezone": "Europe/Paris"}
    _ok(api.call("PATCH", f"/orgs/{org}/settings", token=world.owner, json=settings))
    _buy(world, "20", priority=10, expires_at=TRIAL_ENDS.isoformat())
    first, second = world.student_ids
    for member, amount in ((first, "15"), (second, "10")):
        body = {"member_ids": [member], "amount": amount}
        _ok(api.call("POST", f"/orgs/{org}/allocations", token=world.manager, json=body))
    render = {"amount": "3"}
    path = f"/orgs/{org}/members/{first}/usage"
    _ok(api.call("POST", path, token=world.usage_key, json=render))
    hold = {"amount": "2"}
    path = f"/orgs/{org}/members/{second}/holds"
    _ok(api.call("POST", path, token=world.usage_key, json=hold))


def _page(client: TestClient, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    return page.text


def _text(markup: str) -> str:
    """Markup as read: tags dropped, spaces collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", markup)).strip()


def _lot_rows(page: str) -> list[dict[str, str]]:
    """The "Credits by lot" table's rows, in order, each cell by its `data-figure`."""
    rows = re.findall(r'<tr id="lot-[^"]+" data-lot="[^"]+">(.*?)</tr>', page, re.S)
    return [
        {
            name: _text(value)
            for name, value in re.findall(
                r'data-figure="([^"]+)">(.*?)</(?:td|th|span)>', row, re.S
            )
        }
        for row in rows
    ]


def _section(page: str, section_id: str) -> str:
    found = re.search(rf'<section id="{section_id}".*?</section>', page, re.S)
    assert found is not None, f"no #{section_id}"
    return found.group(0)


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements sent while the test runs."""
    sent: list[str] = []

    def keep(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", keep)
    yield sent
    event.remove(engine, "before_cursor_execute", keep)


def test_the_class_manager_lists_the_lots_in_spending_order_with_their_figures(
    app: FastAPI, world: World
) -> None:
    _trial_story(world)
    page = _page(_signed_in(app, world, world.owner), f"/orgs/{world.org_id}")

    rows = _lot_rows(page)
    assert [row["priority"] for row in rows] == ["10", "50"]  # the trial is spent first
    trial, paid = rows
    assert trial == {
        "order": "1",
        "source": "Purchase",
        "priority": "10",
        "amount": "20",
        "in-pool": "0",
        "in-wallets": "17",
        "held": "2",
        "used": "3",
        "expired": "0",
        "expires": TRIAL_ENDS_IN_PARIS,
    }
    assert paid == {
        "order": "2",
        "source": "Purchase",
        "priority": "50",
        "amount": "100",
        "in-pool": "95",
        "in-wallets": "5",
        "used": "0",
        "expired": "0",
        "expires": "never",
    }
    assert "Expires (Europe/Paris)" in _text(_section(page, "lots"))


def test_credits_expiring_within_a_week_are_announced_at_the_top(
    app: FastAPI, world: World
) -> None:
    _trial_story(world)
    page = _page(_signed_in(app, world, world.manager), f"/orgs/{world.org_id}")

    notice = _section(page, "expiring-soon")
    assert page.index('id="expiring-soon"') < page.index('id="pool"')  # above the figures
    # The trial's 17 in wallets, but for the 2 the hold keeps until it ends.
    assert "Expires soon 15 credits expire within 7 days" in _text(notice)
    assert f"15 credits expire on {TRIAL_ENDS_IN_PARIS} (Europe/Paris)" in _text(notice)
    assert "in students' wallets" in notice
    assert f'datetime="{TRIAL_ENDS.isoformat()}"' in notice


def test_a_lot_expiring_in_more_than_a_week_is_listed_without_a_notice(
    app: FastAPI, world: World
) -> None:
    _buy(world, "30", expires_at=(START + timedelta(days=8)).isoformat())
    page = _page(_signed_in(app, world, world.owner), f"/orgs/{world.org_id}")
    assert [row["amount"] for row in _lot_rows(page)] == ["30", "100"]  # sooner expiry first
    assert 'id="expiring-soon"' not in page


def test_a_member_sees_their_own_credits_expiring_and_not_the_lots(
    app: FastAPI, world: World
) -> None:
    _trial_story(world)
    first, second = (_signed_in(app, world, token) for token in world.students)

    mine = _text(_page(first, "/me"))
    assert f"12 credits expire on {TRIAL_ENDS_IN_PARIS} (Europe/Paris)" in mine
    assert "Credits by lot" not in mine
    theirs = _text(_page(second, "/me"))  # of the trial's 5, the hold keeps 2 until it ends
    assert f"3 credits expire on {TRIAL_ENDS_IN_PARIS} (Europe/Paris)" in theirs

    refused = first.get(f"/orgs/{world.org_id}")
    assert refused.status_code == 403
    assert "Credits by lot" not in refused.text
    assert "expire" not in refused.text


def test_credits_past_their_expiry_show_as_expired_and_nothing_is_announced(
    app: FastAPI, world: World, clock: FakeClock
) -> None:
    api, org = world.api, world.org_id
    _buy(world, "20", priority=10, expires_at=TRIAL_ENDS.isoformat())
    body = {"member_ids": [world.student_ids[0]], "amount": "15"}
    _ok(api.call("POST", f"/orgs/{org}/allocations", token=world.manager, json=body))
    clock.advance(days=6)

    owner = _signed_in(app, world, world.owner)
    page = _page(owner, f"/orgs/{org}")
    trial, paid = _lot_rows(page)
    assert (trial["in-pool"], trial["in-wallets"], trial["used"], trial["expired"]) == (
        "0",
        "0",
        "0",
        "20",
    )
    assert trial["expires"] == "expired Tuesday 6 January 2026, 00:00"  # UTC, the default
    assert (paid["in-pool"], paid["expired"]) == ("100", "0")
    assert 'id="expiring-soon"' not in page
    student = _signed_in(app, world, world.students[0])
    assert "expire" not in _text(_page(student, "/me"))


def test_an_org_of_one_lot_reads_one_small_statement_for_its_table(
    app: FastAPI, world: World, statements: list[str]
) -> None:
    owner = _signed_in(app, world, world.owner)
    statements.clear()
    page = _page(owner, f"/orgs/{world.org_id}")

    rows = _lot_rows(page)
    assert len(rows) == 1
    assert (rows[0]["in-pool"], rows[0]["used"], rows[0]["expires"]) == ("100", "0", "never")
    about_lots = [sql for sql in statements if re.search(r"\blots\b|\blot_balances\b", sql)]
    assert len(about_lots) == 1, about_lots
    assert "GROUP BY" not in about_lots[0]  # no wallet's holding summed
    assert 'id="expiring-soon"' not in page


def test_a_parent_acting_in_its_child_sees_the_lots_it_gave(app: FastAPI, world: World) -> None:
    api = world.api
    _, child_owner = api.sign_up("Child owner")
    email = api.call("GET", "/me", token=child_owner).json()["user"]["email"]
    made = api.call(
        "POST",
        f"/orgs/{world.org_id}/children",
        token=OPERATOR_KEY,
        json={"name": "Northside school", "owner_email": email},
    )
    _ok(made)
    child = made.json()["id"]
    allotted = api.call(
        "POST",
        f"/orgs/{world.org_id}/children/{child}/allocations",
        token=world.owner,
        json={"amount": "40"},
    )
    _ok(allotted)

    page = _page(_signed_in(app, world, world.manager), f"/orgs/{child}")
    (lot,) = _lot_rows(page)
    assert (lot["source"], lot["amount"], lot["in-pool"]) == ("From Render class", "40", "40")
