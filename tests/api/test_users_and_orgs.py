"""The API's users and tokens, and organisations over HTTP, row by row, with the
idempotency convention. Expected values are worked out from the API's contract, not read off
the code."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction
from math import ceil, floor
from typing import Any

from tests.api.support import OPERATOR_KEY, PASSWORD, Api, World, problem
from tests.support.clock import START, FakeClock

YEAR_SECONDS = 31_536_000
MICROS = 1_000_000
# Automatic allocation without a budget per period (API 1.2), as an org starts.
NO_PERIOD = {"period": None, "reclaim": False}


def _org(world: World) -> dict[str, Any]:
    response = world.api.call("GET", f"/orgs/{world.org_id}", token=world.owner)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _balance(world: World, at: str | None = None) -> dict[str, Any]:
    params = None if at is None else {"at": at}
    response = world.api.call(
        "GET", f"/orgs/{world.org_id}/balance", token=world.owner, params=params
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _allot(world: World, member_ids: list[str], amount: str) -> None:
    response = world.api.call(
        "POST",
        f"/orgs/{world.org_id}/allocations",
        token=world.manager,
        json={"member_ids": member_ids, "amount": amount},
    )
    assert response.status_code == 201, response.text


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# Users and tokens ------------------------------------------------------------------------------


def test_sign_up_refuses_a_taken_email_in_any_case_and_a_short_password(api: Api) -> None:
    created = api.call(
        "POST",
        "/users",
        json={"email": "Ada.Lovelace@Example.test", "password": PASSWORD, "name": "Ada"},
    )
    assert created.status_code == 201, created.text
    user = created.json()
    assert set(user) == {"id", "email", "name", "created_at", "email_verified"}
    assert user["name"] == "Ada"
    assert user["email"].lower() == "ada.lovelace@example.test"
    assert _instant(user["created_at"]) == START

    again = api.call(
        "POST",
        "/users",
        json={"email": "ada.lovelace@EXAMPLE.test", "password": PASSWORD, "name": "Ada 2"},
    )
    problem(again, 409, "already_exists")

    short = api.call(
        "POST", "/users", json={"email": "bob@example.test", "password": "1234567", "name": "Bob"}
    )
    assert short.status_code == 422, short.text
    # Exactly 8 characters is long enough, so the refusal above was about the length.
    eight = api.call(
        "POST", "/users", json={"email": "bob@example.test", "password": "12345678", "name": "Bob"}
    )
    assert eight.status_code == 201, eight.text


def test_tokens_are_issued_for_the_right_password_and_revoked_at_once(api: Api) -> None:
    user, _ = api.sign_up("Tess")
    credentials = {"email": user["email"], "password": PASSWORD}
    first = api.call("POST", "/tokens", json=credentials)
    second = api.call("POST", "/tokens", json=credentials)
    assert first.status_code == 201, first.text
    # Version 1.1 of the API adds the token's name and expiry; neither was asked for here.
    assert first.json() | {"id": "", "token": ""} == {
        "id": "",
        "token": "",
        "name": "",
        "expires_at": None,
    }
    assert first.json()["token"] != second.json()["token"]

    wrong = api.call("POST", "/tokens", json={"email": user["email"], "password": "wrong pass"})
    problem(wrong, 401, "unauthenticated")

    token, token_id = first.json()["token"], first.json()["id"]
    me = api.call("GET", "/me", token=token)
    assert me.status_code == 200, me.text
    assert me.json() == {"user": user, "memberships": []}

    revoked = api.call("DELETE", f"/tokens/{token_id}", token=token)
    assert revoked.status_code == 204, revoked.text
    problem(api.call("GET", "/me", token=token), 401, "unauthenticated")
    # Only that token stopped: the user's other token still works.
    assert api.call("GET", "/me", token=second.json()["token"]).status_code == 200
    problem(api.call("GET", "/me"), 401, "unauthenticated")
    # Only its user may revoke a token.
    _, other = api.sign_up("Other")
    problem(api.call("DELETE", f"/tokens/{second.json()['id']}", token=other), 404, "not_found")
    assert api.call("GET", "/me", token=second.json()["token"]).status_code == 200


def test_me_lists_each_membership_with_its_role(world: World) -> None:
    def memberships(token: str) -> list[dict[str, Any]]:
        response = world.api.call("GET", "/me", token=token)
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["memberships"]
        return items

    assert memberships(world.owner) == [
        {
            "org_id": world.org_id,
            "org_name": "Render class",
            "member_id": world.owner_id,
            "role": "owner",
        }
    ]
    assert memberships(world.manager) == [
        {
            "org_id": world.org_id,
            "org_name": "Render class",
            "member_id": world.manager_id,
            "role": "manager",
        }
    ]
    student = memberships(world.students[0])
    assert [(m["member_id"], m["role"]) for m in student] == [(world.student_ids[0], "member")]
    stranger = memberships(world.stranger)
    assert [(m["org_id"], m["org_name"], m["role"]) for m in stranger] == [
        (world.other_org["id"], "Other class", "owner")
    ]


# Organisations ---------------------------------------------------------------------------------


def test_only_an_operator_creates_orgs_with_api_md_defaults_or_given_settings(api: Api) -> None:
    owner_user, owner = api.sign_up("Olga")
    body = {"name": "Studio", "owner_email": owner_user["email"]}
    problem(api.call("POST", "/orgs", token=owner, json=body), 403, "forbidden")
    problem(api.call("POST", "/orgs", json=body), 401, "unauthenticated")

    created = api.call("POST", "/orgs", token=OPERATOR_KEY, json=body)
    assert created.status_code == 201, created.text
    org = created.json()
    assert org["name"] == "Studio"
    assert org["paused"] is False
    assert org["invite_code"]
    assert org["settings"] == {
        "returnable": True,
        "auto_allocation": {"enabled": False, "bundle": "5", "max_per_member": "0", **NO_PERIOD},
        "seat_rates": {"licensed": "0", "unlicensed": "0", "external": "0"},
        "alerts": {"low_balance": None, "days_left": None},
        "timezone": "UTC",
    }
    balance = org["balance"]
    assert (balance["available"], balance["allocated"], balance["purchased"]) == ("0", "0", "0")
    assert (balance["used"], balance["metered"], balance["burn_rate_per_day"]) == ("0", "0", "0")
    assert balance["depletes_at"] is None
    assert _instant(org["created_at"]) == START

    members = api.call("GET", f"/orgs/{org['id']}/members", token=owner)
    assert members.status_code == 200, members.text
    [owner_member] = members.json()["items"]
    assert owner_member["user_id"] == owner_user["id"]
    assert (owner_member["role"], owner_member["seat"]) == ("owner", "licensed")
    assert owner_member["status"] == "active"

    with_settings = api.call(
        "POST",
        "/orgs",
        token=OPERATOR_KEY,
        json={
            "name": "Metered studio",
            "owner_email": owner_user["email"],
            "settings": {"returnable": False, "seat_rates": {"licensed": "1"}},
        },
    )
    assert with_settings.status_code == 201, with_settings.text
    metered = with_settings.json()
    assert metered["settings"] == {
        "returnable": False,
        "auto_allocation": {"enabled": False, "bundle": "5", "max_per_member": "0", **NO_PERIOD},
        "seat_rates": {"licensed": "1", "unlicensed": "0", "external": "0"},
        "alerts": {"low_balance": None, "days_left": None},
        "timezone": "UTC",
    }
    # The owner's licensed seat burns 1 credit a year at once: 1/365 a day, to 6 places.
    assert metered["balance"]["burn_rate_per_day"] == "0.00274"


def test_orgs_are_listed_for_the_operator_and_each_user_sees_its_own(world: World) -> None:
    api = world.api

    def listed(token: str) -> list[str]:
        response = api.call("GET", "/orgs", token=token)
        assert response.status_code == 200, response.text
        assert response.json()["next_cursor"] is None
        return [org["id"] for org in response.json()["items"]]

    assert {world.org_id, world.other_org["id"]} <= set(listed(OPERATOR_KEY))
    assert listed(world.owner) == [world.org_id]
    assert listed(world.manager) == [world.org_id]
    assert listed(world.stranger) == [world.other_org["id"]]

    got = api.call("GET", f"/orgs/{world.org_id}", token=world.manager)
    assert got.status_code == 200, got.text
    assert (got.json()["id"], got.json()["name"]) == (world.org_id, "Render class")
    assert got.json()["balance"]["available"] == "100"
    problem(api.call("GET", f"/orgs/{world.org_id}", token=world.stranger), 404, "not_found")
    problem(api.call("GET", f"/orgs/{world.org_id}", token=world.students[0]), 403, "forbidden")
    problem(api.call("GET", "/orgs/org_doesnotexist", token=OPERATOR_KEY), 404, "not_found")


def test_settings_change_any_part_and_keep_the_rest_or_refuse_a_bad_policy(
    world: World,
) -> None:
    api, path = world.api, f"/orgs/{world.org_id}/settings"

    def patch(body: dict[str, Any], token: str = world.owner) -> Any:
        return api.call("PATCH", path, token=token, json=body)

    enabled = patch({"auto_allocation": {"enabled": True}})
    assert enabled.status_code == 200, enabled.text
    assert enabled.json() == {
        "returnable": True,
        "auto_allocation": {"enabled": True, "bundle": "5", "max_per_member": "0", **NO_PERIOD},
        "seat_rates": {"licensed": "0", "unlicensed": "0", "external": "0"},
        "alerts": {"low_balance": None, "days_left": None},
        "timezone": "UTC",
    }
    capped = patch({"auto_allocation": {"max_per_member": "20"}})
    assert capped.json()["auto_allocation"] == {
        "enabled": True,
        "bundle": "5",
        "max_per_member": "20",
        **NO_PERIOD,
    }
    rated = patch({"seat_rates": {"unlicensed": 0.1}, "returnable": False})
    expected = {
        "returnable": False,
        "auto_allocation": {"enabled": True, "bundle": "5", "max_per_member": "20", **NO_PERIOD},
        "seat_rates": {"licensed": "0", "unlicensed": "0.1", "external": "0"},
        "alerts": {"low_balance": None, "days_left": None},
        "timezone": "UTC",
    }
    assert rated.json() == expected

    refused = [
        {"auto_allocation": {"bundle": "0"}},
        {"auto_allocation": {"bundle": "-5"}},
        {"auto_allocation": {"max_per_member": "12"}},  # not a multiple of 5
        {"auto_allocation": {"bundle": "3"}},  # 20 is not a multiple of 3
        {"auto_allocation": {"max_per_member": "-5"}},
        # A good part alongside a bad one changes nothing either.
        {"returnable": True, "auto_allocation": {"bundle": "10", "max_per_member": "15"}},
    ]
    for body in refused:
        problem(patch(body), 422, "invalid_policy")
    assert _org(world)["settings"] == expected

    problem(patch({"returnable": True}, token=world.manager), 403, "forbidden")
    assert _org(world)["settings"]["returnable"] is False


def test_operator_records_purchases_as_strings_or_numbers_and_refuses_bad_amounts(
    world: World,
) -> None:
    api, path = world.api, f"/orgs/{world.org_id}/purchases"
    made = api.call("POST", path, token=OPERATOR_KEY, json={"amount": "12.5", "reference": "PO-7"})
    assert made.status_code == 201, made.text
    transfer = made.json()
    assert (transfer["kind"], transfer["from"], transfer["to"]) == ("purchase", "purchases", "pool")
    assert (transfer["amount"], transfer["reference"]) == ("12.5", "PO-7")
    assert transfer["member_id"] is None
    assert transfer["batch_id"]
    assert transfer["actor"]
    assert _instant(transfer["created_at"]) == START

    as_numbers = [(2.25, "2.25"), (7, "7"), ("0.000001", "0.000001"), ("3.500000", "3.5")]
    for amount, shown in as_numbers:
        response = api.call("POST", path, token=OPERATOR_KEY, json={"amount": amount})
        assert response.status_code == 201, response.text
        assert response.json()["amount"] == shown

    bad = ["1.0000001", "0", 0, "-1", -3, "abc", "", True, "1000000000.000001", 1_000_000_001]
    for amount in bad:
        problem(
            api.call("POST", path, token=OPERATOR_KEY, json={"amount": amount}),
            422,
            "invalid_amount",
        )
    problem(api.call("POST", path, token=world.owner, json={"amount": "5"}), 403, "forbidden")

    expected = Fraction(100) + Fraction("12.5") + Fraction("2.25") + 7
    expected += Fraction("0.000001") + Fraction("3.5")
    balance = _balance(world)
    assert Fraction(balance["available"]) == expected
    assert Fraction(balance["purchased"]) == expected


def test_pause_refuses_usage_but_not_allocations_until_resumed(world: World) -> None:
    api, org = world.api, world.org_id
    usage_path = f"/orgs/{org}/members/{world.student_ids[0]}/usage"
    _allot(world, [world.student_ids[0]], "10")

    problem(api.call("POST", f"/orgs/{org}/pause", token=world.manager), 403, "forbidden")
    paused = api.call("POST", f"/orgs/{org}/pause", token=world.owner)
    assert paused.status_code == 200, paused.text
    assert (paused.json()["id"], paused.json()["paused"]) == (org, True)
    assert _org(world)["paused"] is True

    problem(
        api.call("POST", usage_path, token=world.usage_key, json={"amount": "1"}),
        409,
        "org_paused",
    )
    _allot(world, [world.student_ids[1]], "4")  # allowed while paused
    assert _balance(world)["available"] == "86"

    resumed = api.call("POST", f"/orgs/{org}/resume", token=world.owner)
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["paused"] is False
    charged = api.call("POST", usage_path, token=world.usage_key, json={"amount": "1"})
    assert charged.status_code == 201, charged.text
    assert charged.json()["member"]["credits_available"] == "9"


def test_balance_at_a_future_instant_includes_seat_burn(world: World, clock: FakeClock) -> None:
    api, org = world.api, world.org_id
    idle = _balance(world)
    assert (idle["burn_rate_per_day"], idle["depletes_at"]) == ("0", None)
    assert _instant(idle["at"]) == START

    rates = {"seat_rates": {"licensed": "1", "unlicensed": "0.1", "external": "0"}}
    changed = api.call("PATCH", f"/orgs/{org}/settings", token=world.owner, json=rates)
    assert changed.status_code == 200, changed.text
    seat = api.call(
        "PATCH",
        f"/orgs/{org}/members/{world.student_ids[1]}",
        token=world.manager,
        json={"seat": "unlicensed"},
    )
    assert seat.status_code == 200, seat.text

    # Owner, manager and one student licensed; one student unlicensed; all from START.
    rate = 3 * Fraction(1) + Fraction("0.1")  # credits a year
    rate_micros = int(rate * MICROS)
    later = START + timedelta(days=10, hours=5, seconds=7)
    seconds = int((later - START).total_seconds())
    accrued = Fraction(floor(Fraction(rate_micros * seconds, YEAR_SECONDS)), MICROS)

    future = _balance(world, at=_rfc3339(later))
    assert _instant(future["at"]) == later
    assert Fraction(future["available"]) == 100 - accrued
    assert Fraction(future["metered"]) == accrued
    assert Fraction(future["purchased"]) == 100
    per_day = round(rate / 365, 6)
    assert Fraction(future["burn_rate_per_day"]) == Fraction(per_day)
    to_zero = ceil(Fraction(100 * MICROS * YEAR_SECONDS, rate_micros))
    assert _instant(future["depletes_at"]) == START + timedelta(seconds=to_zero)

    now = _balance(world)
    assert now["available"] == "100"  # no time has passed yet

    clock.advance(days=1)
    problem(
        api.call("GET", f"/orgs/{org}/balance", token=world.owner, params={"at": _rfc3339(START)}),
        422,
        "validation_error",
    )
    problem(
        api.call(
            "GET", f"/orgs/{org}/balance", token=world.owner, params={"at": "2027-01-01T00:00:00"}
        ),
        422,
        "validation_error",
    )

    now = clock.now()
    today = _balance(world, at=_rfc3339(now))  # now is not in the past
    assert _instant(today["at"]) == now
    elapsed = int((now - START).total_seconds())
    spent = Fraction(floor(Fraction(rate_micros * elapsed, YEAR_SECONDS)), MICROS)
    assert Fraction(today["available"]) == 100 - spent

    paused = api.call("POST", f"/orgs/{org}/pause", token=world.owner)
    assert paused.status_code == 200, paused.text
    still = _balance(world, at=_rfc3339(START + timedelta(days=400)))
    assert (still["burn_rate_per_day"], still["depletes_at"]) == ("0", None)


def test_transfers_come_newest_first_by_member_and_in_pages(world: World, clock: FakeClock) -> None:
    api, org = world.api, world.org_id
    first, second = world.student_ids
    for member_id, amount in [(first, "1"), (second, "4"), (first, "2"), (first, "3")]:
        clock.advance(seconds=1)
        _allot(world, [member_id], amount)

    everything = api.call("GET", f"/orgs/{org}/transfers", token=world.manager)
    assert everything.status_code == 200, everything.text
    items = everything.json()["items"]
    assert everything.json()["next_cursor"] is None
    assert [(t["kind"], t["amount"]) for t in items] == [
        ("allocation", "3"),
        ("allocation", "2"),
        ("allocation", "4"),
        ("allocation", "1"),
        ("purchase", "100"),
    ]
    times = [_instant(t["created_at"]) for t in items]
    assert times == sorted(times, reverse=True)

    mine = api.call(
        "GET", f"/orgs/{org}/transfers", token=world.manager, params={"member": first}
    ).json()["items"]
    assert [(t["kind"], t["amount"], t["member_id"]) for t in mine] == [
        ("allocation", "3", first),
        ("allocation", "2", first),
        ("allocation", "1", first),
    ]
    # A member may read its own part of the ledger, not the whole of it.
    own = api.call(
        "GET", f"/orgs/{org}/transfers", token=world.students[0], params={"member": first}
    )
    assert own.status_code == 200, own.text
    assert [t["id"] for t in own.json()["items"]] == [t["id"] for t in mine]
    problem(api.call("GET", f"/orgs/{org}/transfers", token=world.students[0]), 403, "forbidden")

    paged: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 2}
    pages = 0
    while True:
        response = api.call("GET", f"/orgs/{org}/transfers", token=world.owner, params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= 2
        paged.extend(body["items"])
        pages += 1
        if body["next_cursor"] is None:
            break
        params = {"limit": 2, "cursor": body["next_cursor"]}
    assert pages == 3
    assert [t["id"] for t in paged] == [t["id"] for t in items]
    problem(
        api.call("GET", f"/orgs/{org}/transfers", token=world.owner, params={"limit": 501}),
        422,
        "validation_error",
    )


def test_api_keys_are_shown_once_listed_without_secret_and_revoked_at_once(
    world: World,
) -> None:
    api, path = world.api, f"/orgs/{world.org_id}/api-keys"
    problem(
        api.call("POST", path, token=world.manager, json={"name": "x", "scopes": ["usage"]}),
        403,
        "forbidden",
    )
    created = api.call("POST", path, token=world.owner, json={"name": "ci", "scopes": ["usage"]})
    assert created.status_code == 201, created.text
    assert set(created.json()) == {"id", "key"}
    key_id, key = created.json()["id"], created.json()["key"]
    balance = api.call("GET", f"/orgs/{world.org_id}/balance", token=key)
    assert balance.status_code == 200, balance.text

    listed = api.call("GET", path, token=world.owner)
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    ours = [item for item in items if item["id"] == key_id]
    assert len(ours) == 1
    assert set(ours[0]) == {"id", "name", "scopes", "created_at", "last_used_at"}
    assert (ours[0]["name"], ours[0]["scopes"]) == ("ci", ["usage"])
    assert {"farm", "ci"} <= {item["name"] for item in items}
    assert key not in listed.text
    assert world.usage_key not in listed.text
    problem(api.call("GET", path, token=world.manager), 403, "forbidden")

    deleted = api.call("DELETE", f"{path}/{key_id}", token=world.owner)
    assert deleted.status_code == 204, deleted.text
    problem(api.call("GET", f"/orgs/{world.org_id}/balance", token=key), 401, "unauthenticated")
    still = api.call("GET", f"/orgs/{world.org_id}/balance", token=world.usage_key)
    assert still.status_code == 200, still.text


def test_reset_preview_changes_nothing_and_reset_removes_students(world: World) -> None:
    api, org = world.api, world.org_id
    first, second = world.student_ids
    _allot(world, [first, second], "10")
    used = api.call(
        "POST", f"/orgs/{org}/members/{first}/usage", token=world.usage_key, json={"amount": "3"}
    )
    assert used.status_code == 201, used.text
    invited = api.call(
        "POST", f"/orgs/{org}/invitations", token=world.manager, json={"emails": ["x@example.test"]}
    )
    assert invited.status_code == 201, invited.text
    old_code = _org(world)["invite_code"]

    problem(api.call("GET", f"/orgs/{org}/reset", token=world.manager), 403, "forbidden")
    preview = api.call("GET", f"/orgs/{org}/reset", token=world.owner)
    assert preview.status_code == 200, preview.text
    assert (preview.json()["removed"], preview.json()["revoked"]) == (2, "17")
    assert _org(world)["invite_code"] == old_code
    assert _balance(world)["available"] == "80"
    active = api.call("GET", f"/orgs/{org}/members", token=world.owner).json()["items"]
    assert len(active) == 4

    reset = api.call("POST", f"/orgs/{org}/reset", token=world.owner)
    assert reset.status_code == 200, reset.text
    assert (reset.json()["removed"], reset.json()["revoked"]) == (2, "17")
    new_code = reset.json()["invite_code"]
    assert new_code != old_code
    assert _org(world)["invite_code"] == new_code
    assert _balance(world)["available"] == "97"

    active = api.call("GET", f"/orgs/{org}/members", token=world.owner).json()["items"]
    assert sorted(m["role"] for m in active) == ["manager", "owner"]
    removed = api.call(
        "GET", f"/orgs/{org}/members", token=world.owner, params={"status": "removed"}
    ).json()["items"]
    assert sorted(m["id"] for m in removed) == sorted(world.student_ids)
    assert all(m["credits_available"] == "0" for m in removed)
    pending = api.call(
        "GET", f"/orgs/{org}/invitations", token=world.owner, params={"status": "pending"}
    ).json()["items"]
    assert pending == []

    _, newcomer = api.sign_up("Newcomer")
    problem(api.call("POST", f"/join/{old_code}", token=newcomer), 404, "invite_invalid")
    assert api.call("POST", f"/join/{new_code}", token=newcomer).status_code == 201


def test_idempotency_replays_the_first_answer_and_refuses_another_body(world: World) -> None:
    api, org = world.api, world.org_id
    path = f"/orgs/{org}/allocations"
    body = {"member_ids": [world.student_ids[0]], "amount": "5"}

    first = api.call("POST", path, token=world.manager, json=body, key="allot-1")
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    again = api.call("POST", path, token=world.manager, json=body, key="allot-1")
    assert again.status_code == 201, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert _balance(world)["available"] == "95"

    other = {"member_ids": [world.student_ids[0]], "amount": "6"}
    problem(
        api.call("POST", path, token=world.manager, json=other, key="allot-1"),
        422,
        "idempotency_mismatch",
    )
    # Keys are per caller: the owner's "allot-1" is a key of its own.
    owners = api.call("POST", path, token=world.owner, json=other, key="allot-1")
    assert owners.status_code == 201, owners.text
    assert "Idempotent-Replayed" not in owners.headers
    assert _balance(world)["available"] == "89"

    problem(
        api.call("POST", path, token=world.manager, json=body, key="k" * 256),
        422,
        "validation_error",
    )
    longest = api.call("POST", path, token=world.manager, json=body, key="k" * 255)
    assert longest.status_code == 201, longest.text
    assert _balance(world)["available"] == "84"

    purchase = {"amount": "10", "reference": "PO-1"}
    for _ in range(2):
        bought = api.call(
            "POST", f"/orgs/{org}/purchases", token=OPERATOR_KEY, json=purchase, key="po-1"
        )
        assert bought.status_code == 201, bought.text
    assert bought.headers["Idempotent-Replayed"] == "true"
    assert _balance(world)["available"] == "94"
