"""Names, references and e-mail addresses over HTTP: invisible characters that change how text
reads are refused, and an e-mail address is exactly one plain address, lower-cased."""

from __future__ import annotations

import pytest

from tests.api.support import OPERATOR_KEY, PASSWORD, Api, World, problem

# Right-to-left override, left-to-right isolate, zero-width space and joiner, a line break,
# the byte-order mark, an escape.
TRICKS = ["\u202e", "\u2066", "\u200b", "\u200d", "\n", "\ufeff", "\x1b"]

TRICKY_ADDRESSES = [
    "ada@example.test, bob@example.test",  # two addresses
    "ada@example.test;bob@example.test",
    "Ada Lovelace <ada@example.test>",  # a display name
    "<ada@example.test>",
    '"ada bob"@example.test',  # a quoted local part
    '"ada@evil.test"@example.test',
    "ada lovelace@example.test",  # a space
    "ada@example.test\nbcc@evil.test",  # a header injected
    "ada@[127.0.0.1]",  # an IP for a domain
    "ada@localhost",
    "ada..lovelace@example.test",
    "ada\u202e@example.test",
    "ada@exa\u200bmple.test",
    "@example.test",
    "ada@",
]


def test_names_with_invisible_characters_are_refused(world: World) -> None:
    api, org = world.api, world.org_id
    for trick in TRICKS:
        name = f"Render{trick}class"
        for path, token, body in (
            ("/orgs", OPERATOR_KEY, {"name": name, "owner_email": "nobody@example.test"}),
            (f"/orgs/{org}/groups", world.owner, {"name": name}),
            (f"/orgs/{org}/api-keys", world.owner, {"name": name, "scopes": ["usage"]}),
            ("/users", None, {"email": "zed@example.test", "password": PASSWORD, "name": name}),
        ):
            problem(api.call("POST", path, token=token, json=body), 422, "validation_error")
    assert api.call("GET", f"/orgs/{org}/groups", token=world.owner).json()["items"] == []
    issued = api.call("POST", "/tokens", json={"email": "zed@example.test", "password": PASSWORD})
    problem(issued, 401, "unauthenticated")


def test_references_with_invisible_characters_are_refused(world: World) -> None:
    api, org, ada = world.api, world.org_id, world.student_ids[0]
    api.call(
        "POST",
        f"/orgs/{org}/allocations",
        token=world.owner,
        json={"member_ids": [ada], "amount": "5"},
    )
    reference = "invoice \u202e24/11-6202"
    purchase = {"amount": "1", "reference": reference}
    problem(
        api.call("POST", f"/orgs/{org}/purchases", token=OPERATOR_KEY, json=purchase),
        422,
        "validation_error",
    )
    charge = {"amount": "1", "reference": reference}
    path = f"/orgs/{org}/members/{ada}/usage"
    problem(api.call("POST", path, token=world.usage_key, json=charge), 422, "validation_error")
    event = {"key": "e1", "member_id": ada, "amount": "1", "reference": reference}
    batch = api.call("POST", f"/orgs/{org}/usage", token=world.usage_key, json={"events": [event]})
    assert batch.json()["results"][0]["code"] == "validation_error"
    transfers = api.call("GET", f"/orgs/{org}/transfers", token=world.owner).json()["items"]
    assert not any(t["kind"] in ("usage", "purchase") and t["reference"] for t in transfers)


def test_real_names_in_any_script_are_kept(world: World) -> None:
    api = world.api
    for name in ("Zoë Ørsted", "محمد علي", "李小龍", "Class 3 🎻"):
        made = api.call(
            "POST", f"/orgs/{world.org_id}/groups", token=world.owner, json={"name": name}
        )
        assert made.status_code == 201, made.text
        assert made.json()["name"] == name


@pytest.mark.parametrize("address", TRICKY_ADDRESSES)
def test_sign_up_takes_exactly_one_plain_address(api: Api, address: str) -> None:
    body = {"email": address, "password": PASSWORD, "name": "Ada"}
    problem(api.call("POST", "/users", json=body), 422, "validation_error")


def test_an_invitation_takes_exactly_one_plain_address(world: World) -> None:
    api, path = world.api, f"/orgs/{world.org_id}/invitations"
    for address in TRICKY_ADDRESSES:
        emails = ["fine@example.test", address]
        invited = api.call("POST", path, token=world.owner, json={"emails": emails})
        problem(invited, 422, "validation_error")
    # Refused whole: not even the good address was invited.
    assert api.call("GET", path, token=world.owner).json()["items"] == []


def test_an_address_is_stored_trimmed_and_lower_cased(world: World) -> None:
    api = world.api
    created = api.call(
        "POST",
        "/users",
        json={"email": "  Ada.Lovelace@Example.TEST ", "password": PASSWORD, "name": "Ada"},
    )
    assert created.status_code == 201, created.text
    assert created.json()["email"] == "ada.lovelace@example.test"
    invited = api.call(
        "POST",
        f"/orgs/{world.org_id}/invitations",
        token=world.owner,
        json={"emails": ["Bob+Class@Example.TEST", "zoë@bücher.example"]},
    )
    assert invited.status_code == 201, invited.text
    assert sorted(item["email"] for item in invited.json()["items"]) == [
        "bob+class@example.test",
        "zoë@bücher.example",
    ]
