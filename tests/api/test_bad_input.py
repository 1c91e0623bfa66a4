"""Bad input is refused with a stable problem code, never a 500, and never changes anything.

Each bad request below would otherwise be allowed: it is sent by the operator, to real targets,
and where it carries a body, the body is a good one spoiled in exactly one way (a wrong type, a
typo in a field name, an amount out of bounds, a string too long, a bad header), so a request
that slipped through would move credits or create something. After each one the orgs (with
their balances and settings), the ledger and the members' wallets must read exactly as before.

Expectations come from the API's contract: amounts that are not positive decimals of at most
6 places up to
1,000,000,000 are 422 `invalid_amount`; any other malformed request (bad JSON, wrong type, missing
or unknown field, a string too long, a bad Idempotency-Key, a time in the past) is 422
`validation_error`; a bad bearer token is 401 `unauthenticated`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx2 as httpx
import pytest

from tests.api.support import PASSWORD, World, problem

NO_BODY = object()
LONG = "x" * 201  # names and references are at most 200 characters


@dataclass(frozen=True)
class Bad:
    """A bad request and the refusal it must get.

    Paths and string bodies may name `{org}`, `{s0}` and `{s1}` (the students), `{hold}` (a
    pending hold of 2 on the first student) and `{group}`.
    """

    label: str
    method: str
    path: str
    json: Any = NO_BODY
    raw: str | None = None  # a body sent as is
    content_type: str = "application/json"
    status: int = 422
    code: str = "validation_error"
    headers: dict[str, str] = field(default_factory=dict)
    authorization: str | None = None  # the whole Authorization header; the operator's if None
    params: dict[str, Any] | None = None
    results: tuple[str, ...] = ()  # for a batch that answers 200: the code of each event


def _event(key: str, **fields: Any) -> dict[str, Any]:
    """A usage event of the first student that is good but for `fields`."""
    return {"key": key, "member_id": "{s0}", "amount": "1", **fields}


def _bad_requests(owner_email: str) -> list[Bad]:
    org = "/orgs/{org}"
    purchases, allocations, revocations = (
        f"{org}/purchases",
        f"{org}/allocations",
        f"{org}/revocations",
    )
    usage, holds, batch = (
        f"{org}/members/{{s0}}/usage",
        f"{org}/members/{{s0}}/holds",
        f"{org}/usage",
    )
    capture, settings = f"{org}/holds/{{hold}}/capture", f"{org}/settings"
    one = {"amount": "1"}
    return [
        # Bodies that are not JSON, or not the JSON of an object.
        Bad("text that is not JSON", "POST", purchases, raw="amount=1"),
        Bad("truncated JSON", "POST", allocations, raw='{"member_ids": ["{s0}"], "amount": "1"'),
        Bad("JSON with a trailing comma", "POST", usage, raw='{"amount": "1",}'),
        Bad(
            "JSON sent as text/plain",
            "POST",
            purchases,
            raw='{"amount": "1"}',
            content_type="text/plain",
        ),
        Bad("no body where one is needed", "POST", purchases, raw=""),
        Bad("a list for an object", "POST", purchases, json=[one]),
        Bad("a string for an object", "POST", allocations, json="all"),
        Bad("null for an object", "PATCH", settings, raw="null"),
        Bad("a number for the events", "POST", batch, json={"events": 5}),
        Bad("an object for the events", "POST", batch, json={"events": _event("solo")}),
        Bad("no events", "POST", batch, json={"events": []}),
        Bad("1,001 events", "POST", batch, json={"events": [_event(f"e{n}") for n in range(1001)]}),
        # Values of the wrong type.
        Bad("amount true", "POST", purchases, json={"amount": True}, code="invalid_amount"),
        Bad(
            "amount []",
            "POST",
            allocations,
            json={"member_ids": ["{s0}"], "amount": []},
            code="invalid_amount",
        ),
        Bad("amount {}", "POST", usage, json={"amount": {"value": 1}}, code="invalid_amount"),
        Bad("metrics renders -1", "POST", usage, json={"amount": "1", "metrics": {"renders": -1}}),
        Bad(
            "metrics renders 1.5", "POST", usage, json={"amount": "1", "metrics": {"renders": 1.5}}
        ),
        Bad("metrics a list", "POST", capture, json={"amount": "1", "metrics": ["renders"]}),
        Bad("expires_in a string", "POST", holds, json={"amount": "1", "expires_in": "60"}),
        Bad("expires_in 0", "POST", holds, json={"amount": "1", "expires_in": 0}),
        Bad("expires_in over a week", "POST", holds, json={"amount": "1", "expires_in": 604_801}),
        Bad(
            "member_ids a word", "POST", allocations, json={"member_ids": "everyone", "amount": "1"}
        ),
        Bad("member_ids of numbers", "POST", allocations, json={"member_ids": [5], "amount": "1"}),
        Bad(
            "both member_ids and group_id",
            "POST",
            allocations,
            json={"member_ids": ["{s0}"], "group_id": "{group}", "amount": "1"},
        ),
        Bad("neither member_ids nor group_id", "POST", revocations, json={"amount": "1"}),
        Bad("an unknown seat", "PATCH", f"{org}/members/{{s1}}", json={"seat": "gold"}),
        Bad("an unknown role", "PATCH", f"{org}/members/{{s1}}", json={"role": "admin"}),
        Bad("emails a string", "POST", f"{org}/invitations", json={"emails": "new@example.test"}),
        Bad(
            "an unknown scope",
            "POST",
            f"{org}/api-keys",
            json={"name": "farm", "scopes": ["admin"]},
        ),
        Bad("a number for a name", "POST", f"{org}/groups", json={"name": 5}),
        Bad("returnable maybe", "PATCH", settings, json={"returnable": "maybe"}),
        # Unknown fields: a typo never passes silently.
        Bad("amout for amount", "POST", purchases, json={"amount": "1", "amout": "2"}),
        Bad("metrcs for metrics", "POST", usage, json={"amount": "1", "metrcs": {"renders": 1}}),
        Bad(
            "a note on an allotment",
            "POST",
            allocations,
            json={"member_ids": ["{s0}"], "amount": "1", "note": "hi"},
        ),
        Bad(
            "bundel for bundle",
            "PATCH",
            settings,
            json={"returnable": False, "auto_allocation": {"enabled": True, "bundel": "5"}},
        ),
        Bad(
            "a plan for a new org",
            "POST",
            "/orgs",
            json={"name": "New", "owner_email": owner_email, "plan": "gold"},
        ),
        Bad(
            "admin on a new user",
            "POST",
            "/users",
            json={"email": "admin@example.test", "password": PASSWORD, "name": "A", "admin": True},
        ),
        # Strings too long.
        Bad("an org name of 201", "POST", "/orgs", json={"name": LONG, "owner_email": owner_email}),
        Bad("a group name of 201", "POST", f"{org}/groups", json={"name": LONG}),
        Bad("a group renamed to 201", "PATCH", f"{org}/groups/{{group}}", json={"name": LONG}),
        Bad(
            "a key name of 201", "POST", f"{org}/api-keys", json={"name": LONG, "scopes": ["usage"]}
        ),
        Bad(
            "a user name of 201",
            "POST",
            "/users",
            json={"email": "long@example.test", "password": PASSWORD, "name": LONG},
        ),
        Bad(
            "a purchase reference of 201",
            "POST",
            purchases,
            json={"amount": "1", "reference": LONG},
        ),
        Bad("a usage reference of 201", "POST", usage, json={"amount": "1", "reference": LONG}),
        Bad("a hold reference of 201", "POST", holds, json={"amount": "1", "reference": LONG}),
        Bad(
            "an e-mail of 334",
            "POST",
            f"{org}/invitations",
            json={"emails": ["a" * 320 + "@example.test"]},
        ),
        Bad(
            "a password of 7",
            "POST",
            "/users",
            json={"email": "short@example.test", "password": "1234567", "name": "S"},
        ),
        # Amounts: not positive, too precise, too large, not plain decimals.
        *(
            Bad(
                f"amount {amount!r}",
                "POST",
                purchases,
                json={"amount": amount},
                code="invalid_amount",
            )
            for amount in [
                "-1",
                "0",
                0,
                -5,
                "0.0000001",
                1e-7,
                "1000000001",
                1_000_000_001,
                "1e3",
                "1E3",
                "",
                " 1",
                "1,5",
                "NaN",
                "Infinity",
                "0x10",
                "\uff11",
            ]
        ),
        Bad(
            "allot 0",
            "POST",
            allocations,
            json={"member_ids": ["{s0}"], "amount": "0"},
            code="invalid_amount",
        ),
        Bad(
            "revoke 0",
            "POST",
            revocations,
            json={"member_ids": ["{s0}"], "amount": "0"},
            code="invalid_amount",
        ),
        Bad("charge -1", "POST", usage, json={"amount": "-1"}, code="invalid_amount"),
        Bad(
            "charge 1000000001", "POST", usage, json={"amount": "1000000001"}, code="invalid_amount"
        ),
        Bad("hold 0.0000001", "POST", holds, json={"amount": "0.0000001"}, code="invalid_amount"),
        Bad("capture 1e3", "POST", capture, json={"amount": "1e3"}, code="invalid_amount"),
        Bad(
            "a bundle abc",
            "PATCH",
            settings,
            json={"auto_allocation": {"bundle": "abc"}},
            code="invalid_amount",
        ),
        Bad(
            "a bundle 0",
            "PATCH",
            settings,
            json={"auto_allocation": {"enabled": True, "bundle": "0"}},
            code="invalid_policy",
        ),
        Bad(
            "a cap off the bundle",
            "PATCH",
            settings,
            json={"auto_allocation": {"enabled": True, "max_per_member": "7"}},
            code="invalid_policy",
        ),
        # A batch of events each bad in its own way: 200, each refused alone, nothing charged.
        Bad(
            "a batch of bad events",
            "POST",
            batch,
            json={
                "events": [
                    _event("b1", amount="1e3"),
                    _event("b2", amount="0"),
                    _event("b3", amount=True),
                    _event("b4", metrics={"renders": -1}),
                    _event("b5", metrics={"renders": 1.5}),
                    _event("b6", amout="2"),
                    _event("b7", reference=LONG),
                    _event("k" * 256),
                ]
            },
            status=200,
            results=("invalid_amount",) * 3 + ("validation_error",) * 5,
        ),
        # Headers: Idempotency-Key is 1 to 255 printable characters; tokens are what they are.
        Bad(
            "an Idempotency-Key of 256",
            "POST",
            purchases,
            json=one,
            headers={"Idempotency-Key": "k" * 256},
        ),
        Bad(
            "an Idempotency-Key with \\x01",
            "POST",
            purchases,
            json=one,
            headers={"Idempotency-Key": "a\x01b"},
        ),
        Bad(
            "an Idempotency-Key with DEL",
            "POST",
            purchases,
            json=one,
            headers={"Idempotency-Key": "a\x7fb"},
        ),
        Bad(
            "an empty Idempotency-Key", "POST", purchases, json=one, headers={"Idempotency-Key": ""}
        ),
        Bad(
            "a bearer token of 10,000",
            "POST",
            purchases,
            json=one,
            authorization="Bearer " + "x" * 10_000,
            status=401,
            code="unauthenticated",
        ),
        Bad(
            "a forged personal token",
            "POST",
            purchases,
            json=one,
            authorization="Bearer cpt.tok_forged.secret",
            status=401,
            code="unauthenticated",
        ),
        Bad(
            "a forged org key",
            "POST",
            purchases,
            json=one,
            authorization="Bearer cpk.{org}.key_forged.secret",
            status=401,
            code="unauthenticated",
        ),
        Bad(
            "Basic credentials",
            "POST",
            purchases,
            json=one,
            authorization="Basic b3BlcmF0b3I6cHc=",
            status=401,
            code="unauthenticated",
        ),
        Bad(
            "Bearer and nothing",
            "POST",
            purchases,
            json=one,
            authorization="Bearer ",
            status=401,
            code="unauthenticated",
        ),
        # Queries.
        Bad(
            "a balance in the past", "GET", f"{org}/balance", params={"at": "2025-12-31T23:59:59Z"}
        ),
        Bad("a balance at a word", "GET", f"{org}/balance", params={"at": "tomorrow"}),
        Bad(
            "a balance at a time with no zone",
            "GET",
            f"{org}/balance",
            params={"at": "2026-06-01T00:00:00"},
        ),
        Bad("limit 0", "GET", f"{org}/transfers", params={"limit": 0}),
        Bad("limit 501", "GET", f"{org}/transfers", params={"limit": 501}),
        Bad("limit ten", "GET", f"{org}/members", params={"limit": "ten"}),
        Bad("an unknown kind", "GET", f"{org}/transfers", params={"kind": "gift"}),
        Bad("an unknown member status", "GET", f"{org}/members", params={"status": "gone"}),
        Bad("an unknown invitation status", "GET", f"{org}/invitations", params={"status": "lost"}),
    ]


def _fill(value: Any, names: dict[str, str]) -> Any:
    """Put the world's ids into a path, header or body."""
    if isinstance(value, str):
        for name, replacement in names.items():
            value = value.replace(f"{{{name}}}", replacement)
        return value
    if isinstance(value, list):
        return [_fill(item, names) for item in value]
    if isinstance(value, dict):
        return {_fill(key, names): _fill(item, names) for key, item in value.items()}
    return value


def _state(world: World) -> dict[str, Any]:
    """What a bad request must leave alone: orgs (balances, settings), ledger, wallets."""
    org = world.org_id

    def read(path: str, **params: Any) -> Any:
        response = world.api.call("GET", path, token=world.operator, params=params)
        assert response.status_code == 200, response.text
        return response.json()["items"]

    return {
        "orgs": read("/orgs", limit=500),
        "transfers": read(f"/orgs/{org}/transfers", limit=500),
        "members": read(f"/orgs/{org}/members", status="all", limit=500),
    }


def _catalogue(world: World) -> dict[str, Any]:
    """What else a bad request could have created: groups, keys, invitations."""
    org = world.org_id
    return {
        what: world.api.call("GET", f"/orgs/{org}/{what}", token=world.operator).json()["items"]
        for what in ("groups", "api-keys", "invitations")
    }


def _send(world: World, bad: Bad, names: dict[str, str]) -> httpx.Response:
    headers = {"Authorization": _fill(bad.authorization or f"Bearer {world.operator}", names)}
    headers.update(bad.headers)
    content: bytes | None = None
    if bad.raw is not None:
        content = _fill(bad.raw, names).encode()
    elif bad.json is not NO_BODY:
        content = httpx.Request("POST", "/", json=_fill(bad.json, names)).content
    if content is not None:
        headers["Content-Type"] = bad.content_type
    return world.api.client.request(
        bad.method,
        f"/api/v1{_fill(bad.path, names)}",
        headers=headers,
        content=content,
        params=bad.params,
    )


def test_bad_requests_are_refused_with_their_code_and_change_nothing(world: World) -> None:
    api, org, operator = world.api, world.org_id, world.operator
    s0, s1 = world.student_ids
    api.call(
        "POST",
        f"/orgs/{org}/allocations",
        token=operator,
        json={"member_ids": [s0], "amount": "10"},
    )
    hold = api.call("POST", f"/orgs/{org}/members/{s0}/holds", token=operator, json={"amount": "2"})
    group = api.call("POST", f"/orgs/{org}/groups", token=operator, json={"name": "Monday"})
    assert hold.status_code == group.status_code == 201, (hold.text, group.text)
    names = {"org": org, "s0": s0, "s1": s1, "hold": hold.json()["id"], "group": group.json()["id"]}
    owner_email = api.call("GET", "/me", token=world.owner).json()["user"]["email"]
    catalogue = _catalogue(world)
    before = _state(world)
    mismatches = []
    for bad in _bad_requests(owner_email):
        response = _send(world, bad, names)
        try:
            if bad.results:
                assert response.status_code == bad.status, response.text
                results = response.json()["results"]
                assert tuple(result["code"] for result in results) == bad.results, response.text
                assert {result["status"] for result in results} == {422}, response.text
            else:
                problem(response, bad.status, bad.code)
        except AssertionError:
            mismatches.append(f"{bad.label}: got {response.status_code} {response.text[:200]}")
        after = _state(world)
        if after != before:
            mismatches.append(f"{bad.label}: changed the orgs, the ledger or the wallets")
            before = after
    assert not mismatches, "\n".join(mismatches)
    assert _catalogue(world) == catalogue
    for email in ("admin@example.test", "long@example.test", "short@example.test"):
        signed_in = api.call("POST", "/tokens", json={"email": email, "password": PASSWORD})
        problem(signed_in, 401, "unauthenticated")  # no such user was made


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_a_body_that_is_not_utf8_is_a_validation_error(world: World) -> None:
    before = _state(world)
    response = world.api.client.post(
        f"/api/v1/orgs/{world.org_id}/purchases",
        content=b'{"amount": "1", "reference": "caf\xe9"}',
        headers={"Authorization": f"Bearer {world.operator}", "Content-Type": "application/json"},
    )
    problem(response, 422, "validation_error")
    assert _state(world) == before


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_values_of_the_wrong_json_type_are_refused_not_coerced(world: World) -> None:
    api, org, operator = world.api, world.org_id, world.operator
    s0 = world.student_ids[0]
    api.call(
        "POST", f"/orgs/{org}/allocations", token=operator, json={"member_ids": [s0], "amount": "5"}
    )
    before = _state(world)
    wrong = [
        ("PATCH", f"/orgs/{org}/settings", {"returnable": "no"}),
        ("PATCH", f"/orgs/{org}/settings", {"returnable": 0}),
        ("PATCH", f"/orgs/{org}/settings", {"auto_allocation": {"enabled": "yes"}}),
        ("POST", f"/orgs/{org}/members/{s0}/usage", {"amount": "1", "metrics": {"renders": "3"}}),
        ("POST", f"/orgs/{org}/members/{s0}/usage", {"amount": "1", "metrics": {"renders": True}}),
    ]
    answers = [api.call(method, path, token=operator, json=body) for method, path, body in wrong]
    assert [answer.status_code for answer in answers] == [422] * len(wrong)
    for answer in answers:
        problem(answer, 422, "validation_error")
    assert _state(world) == before


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_a_lone_surrogate_in_a_usage_event_refuses_only_that_event(world: World) -> None:
    s0 = world.student_ids[0]
    events = [
        f'{{"key": "\\ud800", "member_id": "{s0}", "amount": 1}}',
        '{"key": "bad-member", "member_id": "\\udfff", "amount": 1}',
        f'{{"key": "bad-reference", "member_id": "{s0}", "amount": 1, "reference": "\\ud800"}}',
    ]
    before = _state(world)
    response = world.api.client.post(
        f"/api/v1/orgs/{world.org_id}/usage",
        content=f'{{"events": [{", ".join(events)}]}}'.encode(),
        headers={"Authorization": f"Bearer {world.operator}", "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert [result["status"] for result in response.json()["results"]] == [422, 422, 422]
    assert _state(world) == before


def test_a_nul_character_is_refused_on_both_engines(world: World) -> None:
    api, org, operator = world.api, world.org_id, world.operator
    before = _state(world)
    unauthenticated = api.call("GET", f"/orgs/{org}", token="cpt.tok\x00.secret")
    no_org = api.call("GET", "/orgs/org%00", token=operator)
    no_member = api.call("GET", f"/orgs/{org}/members/mem%00", token=operator)
    group = api.call("POST", f"/orgs/{org}/groups", token=operator, json={"name": "Mon\x00day"})
    reference = api.call(
        "POST", f"/orgs/{org}/purchases", token=operator, json={"amount": "1", "reference": "a\x00"}
    )
    problem(unauthenticated, 401, "unauthenticated")
    problem(no_org, 404, "not_found")
    problem(no_member, 404, "not_found")
    problem(group, 422, "validation_error")
    problem(reference, 422, "validation_error")
    assert _state(world) == before
