"""Lots over HTTP, on both engines: the list in spending order with each lot's figures, the
lots a transfer moved, who may read them, what expired and what expires when (in the balance
and in each member's figures), the ledger's CSV, and purchases refused whole for bad terms.

The clock starts on Thursday 1 January 2026, 00:00 UTC and moves only by hand."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, event

from tests.api.support import OPERATOR_KEY, Api, World, problem, signed_in_browser
from tests.support.clock import FakeClock

LOT_FIELDS = {
    "id",
    "source",
    "parent_lot_id",
    "amount",
    "in_pool",
    "in_wallets",
    "held",
    "used",
    "metered",
    "moved",
    "expired",
    "priority",
    "expires_at",
    "created_at",
}


def _stamp(instant: datetime) -> str:
    return instant.isoformat().replace("+00:00", "Z")


def _buy(world: World, amount: str, **terms: Any) -> dict[str, Any]:
    """A purchase of `amount` with these terms (expires_at as a datetime); the Transfer."""
    if "expires_at" in terms:
        terms["expires_at"] = _stamp(terms["expires_at"])
    made = world.api.call(
        "POST",
        f"/orgs/{world.org_id}/purchases",
        token=OPERATOR_KEY,
        json={"amount": amount, **terms},
    )
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


def _lots(world: World, token: str | None = None, **params: Any) -> list[dict[str, Any]]:
    listed = world.api.call(
        "GET", f"/orgs/{world.org_id}/lots", token=token or world.owner, params=params
    )
    assert listed.status_code == 200, listed.text
    items: list[dict[str, Any]] = listed.json()["items"]
    return items


def _allot(world: World, student: int, amount: str) -> dict[str, Any]:
    made = world.api.call(
        "POST",
        f"/orgs/{world.org_id}/allocations",
        token=world.manager,
        json={"member_ids": [world.student_ids[student]], "amount": amount},
    )
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


def _charge(world: World, student: int, amount: str) -> dict[str, Any]:
    charged = world.api.call(
        "POST",
        f"/orgs/{world.org_id}/members/{world.student_ids[student]}/usage",
        token=world.usage_key,
        json={"amount": amount},
    )
    assert charged.status_code == 201, charged.text
    body: dict[str, Any] = charged.json()
    return body


def _figures(lot: dict[str, Any]) -> tuple[str, ...]:
    return tuple(lot[name] for name in ("amount", "in_pool", "in_wallets", "used", "expired"))


def _by_id(lots: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {lot["id"]: lot for lot in lots}


def _lot_of(purchase: dict[str, Any]) -> str:
    (share,) = purchase["lots"]
    return str(share["lot_id"])


def test_lots_are_listed_in_spending_order_and_a_charge_takes_two(
    world: World, clock: FakeClock
) -> None:
    now = clock.now()
    (opening,) = _lots(world)  # the 100 credits World bought: priority 50, never expiring
    soon = _lot_of(_buy(world, "20", expires_at=now + timedelta(days=10)))
    first = _lot_of(_buy(world, "30", priority=10, expires_at=now + timedelta(days=30)))
    last = _lot_of(_buy(world, "5", priority=90, reference="PO-9"))

    lots = _lots(world, world.manager)
    assert [lot["id"] for lot in lots] == [first, soon, opening["id"], last]
    assert set(lots[0]) == LOT_FIELDS
    assert [(lot["priority"], lot["expires_at"], lot["source"]) for lot in lots] == [
        (10, _stamp(now + timedelta(days=30)), "purchase"),
        (50, _stamp(now + timedelta(days=10)), "purchase"),
        (50, None, "purchase"),
        (90, None, "purchase"),
    ]
    assert [_figures(lot) for lot in lots] == [
        ("30", "30", "0", "0", "0"),
        ("20", "20", "0", "0", "0"),
        ("100", "100", "0", "0", "0"),
        ("5", "5", "0", "0", "0"),
    ]

    allotted = _allot(world, 0, "35")  # all of the first lot, then 5 of the next
    assert allotted["members"][0]["credits_available"] == "35"
    charged = _charge(world, 0, "32.5")  # the wallet spends in the same order
    assert charged["transfer"]["lots"] == [
        {"lot_id": first, "amount": "30"},
        {"lot_id": soon, "amount": "2.5"},
    ]
    listed = _by_id(_lots(world, world.operator))
    assert _figures(listed[first]) == ("30", "0", "0", "30", "0")
    assert _figures(listed[soon]) == ("20", "15", "2.5", "2.5", "0")
    assert _figures(listed[opening["id"]]) == ("100", "100", "0", "0", "0")
    transfers = world.api.call(
        "GET", f"/orgs/{world.org_id}/transfers", token=world.owner, params={"kind": "usage"}
    ).json()["items"]
    assert transfers[0]["lots"] == charged["transfer"]["lots"]


def test_lots_come_in_pages_in_spending_order(world: World, clock: FakeClock) -> None:
    now = clock.now()
    for number in range(5):
        _buy(world, "1", priority=40 + number % 2, expires_at=now + timedelta(days=9 - number))
    whole = _lots(world)
    assert len(whole) == 6
    pages, cursor = [], None
    while True:
        listed = world.api.call(
            "GET",
            f"/orgs/{world.org_id}/lots",
            token=world.owner,
            params={"limit": 2} | ({"cursor": cursor} if cursor else {}),
        ).json()
        pages.append(listed["items"])
        cursor = listed["next_cursor"]
        if cursor is None:
            break
    assert [len(page) for page in pages] == [2, 2, 2]
    assert [lot["id"] for page in pages for lot in page] == [lot["id"] for lot in whole]
    assert [(lot["priority"], lot["expires_at"]) for lot in whole] == [
        (40, _stamp(now + timedelta(days=5))),
        (40, _stamp(now + timedelta(days=7))),
        (40, _stamp(now + timedelta(days=9))),
        (41, _stamp(now + timedelta(days=6))),
        (41, _stamp(now + timedelta(days=8))),
        (50, None),
    ]
    unknown = world.api.call(
        "GET", f"/orgs/{world.org_id}/lots", token=world.owner, params={"cursor": "lot_nothing"}
    )
    assert unknown.json() == {"items": [], "next_cursor": None}
    problem(
        world.api.call(
            "GET", f"/orgs/{world.org_id}/lots", token=world.owner, params={"limit": 501}
        ),
        422,
        "validation_error",
    )


def test_the_owner_managers_and_operators_read_the_lots_and_nobody_else(
    world: World, api: Api
) -> None:
    path = f"/orgs/{world.org_id}/lots"
    for token in (world.owner, world.manager, world.operator):
        assert api.call("GET", path, token=token).status_code == 200
    problem(api.call("GET", path, token=world.students[0]), 403, "forbidden")
    problem(api.call("GET", path, token=world.usage_key), 403, "forbidden")
    problem(api.call("GET", path, token=world.stranger), 404, "not_found")
    problem(api.call("GET", path), 401, "unauthenticated")
    problem(api.call("GET", "/orgs/org_nothing/lots", token=world.operator), 404, "not_found")


def test_a_parents_owner_reads_a_childs_lots_carried_down(api: Api) -> None:
    district = World.build(api, purchase="50")
    school = World.build(api, purchase="0.5", parent=district.org_id)
    moved = api.call(
        "POST",
        f"/orgs/{district.org_id}/children/{school.org_id}/allocations",
        token=district.manager,
        json={"amount": "20"},
    )
    assert moved.status_code == 201, moved.text
    (parent_lot,) = _lots(district)
    assert (parent_lot["in_pool"], parent_lot["moved"]) == ("30", "20")
    carried = [lot for lot in _lots(school, district.owner) if lot["source"] == "parent"]
    assert [(lot["parent_lot_id"], lot["amount"], lot["in_pool"]) for lot in carried] == [
        (parent_lot["id"], "20", "20")
    ]
    problem(api.call("GET", f"/orgs/{district.org_id}/lots", token=school.owner), 404, "not_found")


def test_what_expires_shows_before_and_after_the_instant_passes(
    world: World, clock: FakeClock
) -> None:
    now = clock.now()
    two_days, five_days = now + timedelta(days=2), now + timedelta(days=5)
    early = _lot_of(_buy(world, "20", expires_at=two_days))
    _buy(world, "10", expires_at=five_days)
    balance_path = f"/orgs/{world.org_id}/balance"
    member_path = f"/orgs/{world.org_id}/members/{world.student_ids[0]}"

    before = world.api.call("GET", balance_path, token=world.owner).json()
    assert before["expired"] == "0"
    assert before["expiring"] == [
        {"at": _stamp(two_days), "amount": "20"},
        {"at": _stamp(five_days), "amount": "10"},
    ]
    allotted = _allot(world, 0, "25")  # the soonest to expire first: 20 + 5
    assert allotted["members"][0]["credits_expiring"] == [
        {"at": _stamp(two_days), "amount": "20"},
        {"at": _stamp(five_days), "amount": "5"},
    ]
    charged = _charge(world, 0, "1")
    assert charged["member"]["credits_expiring"] == [
        {"at": _stamp(two_days), "amount": "19"},
        {"at": _stamp(five_days), "amount": "5"},
    ]
    in_pool_and_wallets = world.api.call("GET", balance_path, token=world.owner).json()
    assert in_pool_and_wallets["expiring"] == [
        {"at": _stamp(two_days), "amount": "19"},
        {"at": _stamp(five_days), "amount": "10"},
    ]
    later = world.api.call(
        "GET", balance_path, token=world.owner, params={"at": _stamp(now + timedelta(days=3))}
    ).json()
    assert later["expiring"] == [{"at": _stamp(five_days), "amount": "10"}]

    clock.advance(days=3)
    after = world.api.call("GET", balance_path, token=world.owner).json()
    assert after["expired"] == "19"
    assert after["expiring"] == [{"at": _stamp(five_days), "amount": "10"}]
    assert (after["available"], after["allocated"]) == ("105", "5")
    member = world.api.call("GET", member_path, token=world.students[0]).json()
    assert (member["credits_available"], member["credits_expiring"]) == (
        "5",
        [{"at": _stamp(five_days), "amount": "5"}],
    )
    assert _figures(_by_id(_lots(world))[early]) == ("20", "0", "0", "1", "19")
    org = world.api.call("GET", f"/orgs/{world.org_id}", token=world.manager).json()
    assert (org["balance"]["expired"], org["balance"]["expiring"]) == ("19", after["expiring"])
    listed = world.api.call("GET", f"/orgs/{world.org_id}/members", token=world.owner).json()
    by_id = {item["id"]: item for item in listed["items"]}
    assert by_id[world.student_ids[0]]["credits_expiring"] == member["credits_expiring"]
    assert by_id[world.student_ids[1]]["credits_expiring"] == []


def test_a_charge_answers_what_expires_as_a_read_does_holds_left_out(
    world: World, clock: FakeClock
) -> None:
    """A charge in an org of several lots works out the member's expiring credits from the
    lots it chose from; a pending hold's part is left out, as a read leaves it out."""
    now = clock.now()
    soon, later = now + timedelta(days=2), now + timedelta(days=9)
    _buy(world, "4", expires_at=soon)
    _buy(world, "6", expires_at=later)
    _allot(world, 0, "10")
    member_path = f"/orgs/{world.org_id}/members/{world.student_ids[0]}"
    hold = world.api.call(
        "POST", f"{member_path}/holds", token=world.usage_key, json={"amount": "3"}
    )
    assert hold.status_code == 201, hold.text
    charged = _charge(world, 0, "2")  # after the hold's 3 of the soonest lot: 1 of it, 1 later
    assert charged["member"]["credits_expiring"] == [
        {"at": _stamp(later), "amount": "5"},
    ]
    read = world.api.call("GET", member_path, token=world.owner).json()
    assert read["credits_expiring"] == charged["member"]["credits_expiring"]
    assert (read["credits_available"], read["credits_held"]) == ("5", "3")


def test_a_childs_listed_balance_shows_what_expires(api: Api, clock: FakeClock) -> None:
    district = World.build(api, purchase="1")
    school = World.build(api, purchase="0.5", parent=district.org_id)
    ends = clock.now() + timedelta(days=4)
    _buy(district, "10", expires_at=ends, priority=0)
    moved = api.call(
        "POST",
        f"/orgs/{district.org_id}/children/{school.org_id}/allocations",
        token=district.owner,
        json={"amount": "6"},
    )
    assert moved.status_code == 201, moved.text
    assert moved.json()["child"]["expiring"] == [{"at": _stamp(ends), "amount": "6"}]
    children = api.call("GET", f"/orgs/{district.org_id}/children", token=district.owner).json()
    (child,) = children["items"]
    assert child["balance"]["expiring"] == [{"at": _stamp(ends), "amount": "6"}]
    assert child["balance"]["expired"] == "0"


def test_an_org_whose_lots_never_expire_reads_no_expiry_figures(
    world: World, engine: Engine, clock: FakeClock
) -> None:
    """The figures cost nothing where nothing expires: no statement looks for expiring lots
    in a charge, a balance or a member read; once a lot expires, the reads do (the charge
    works its figures out from the wallet's lots it read to choose from)."""

    def calls() -> None:
        _charge(world, 0, "1")
        world.api.call("GET", f"/orgs/{world.org_id}/balance", token=world.owner)
        world.api.call("GET", f"/orgs/{world.org_id}/members", token=world.owner)

    _allot(world, 0, "5")
    with _statements(engine) as sent:
        calls()
    assert not [sql for sql in sent if _looks_for_expiring(sql)]
    assert sent  # the listener saw the calls

    _buy(world, "1", expires_at=clock.now() + timedelta(days=1), priority=0)
    with _statements(engine) as sent:
        calls()
    assert len([sql for sql in sent if _looks_for_expiring(sql)]) == 2


def _looks_for_expiring(sql: str) -> bool:
    return "lots.expires_at >" in sql and "GROUP BY" in sql


@contextmanager
def _statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL sent through `engine` inside the block."""
    sent: list[str] = []

    def note(*args: object) -> None:
        sent.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", note)


def test_the_ledgers_csv_names_the_lots_each_transfer_moved(
    world: World, app: FastAPI, clock: FakeClock
) -> None:
    first = _lot_of(_buy(world, "3", priority=0, expires_at=clock.now() + timedelta(days=1)))
    (_, opening) = [lot["id"] for lot in _lots(world)]
    _allot(world, 0, "4")
    email = world.api.call("GET", "/me", token=world.owner).json()["user"]["email"]
    browser = signed_in_browser(app, email)
    exported = browser.get(f"/orgs/{world.org_id}/transfers.csv")
    assert exported.status_code == 200, exported.text
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert rows[0]["kind"] == "allocation"
    assert rows[0]["lots"] == f"{first}:3;{opening}:1"
    purchase = next(row for row in rows if row["lots"] == f"{first}:3")
    assert purchase["kind"] == "purchase"


@pytest.mark.parametrize(
    "terms",
    [
        {"expires_at": "2025-12-31T23:59:59Z"},  # before the clock's now
        {"expires_at": "2026-01-01T00:00:00Z"},  # now is not the future either
        {"expires_at": "2026-03-01T00:00:00"},  # no zone
        {"expires_at": "next week"},
        {"expires_at": "2126-01-02T00:00:00Z"},  # over 100 years ahead
        {"expires_at": "9999-12-31T23:59:59-14:00"},  # past the calendar in UTC
        {"priority": 101},
        {"priority": -1},
        {"priority": "5"},
        {"priority": 5.5},
        {"priority": True},
        {"priority": None},
    ],
)
def test_a_purchase_with_bad_terms_is_refused_whole(world: World, terms: dict[str, Any]) -> None:
    before = (_lots(world), _balance(world))
    refused = world.api.call(
        "POST",
        f"/orgs/{world.org_id}/purchases",
        token=OPERATOR_KEY,
        json={"amount": "10", **terms},
    )
    problem(refused, 422, "validation_error")
    assert (_lots(world), _balance(world)) == before


def _balance(world: World) -> Any:
    return world.api.call("GET", f"/orgs/{world.org_id}/balance", token=world.owner).json()
