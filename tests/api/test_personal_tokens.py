"""The API's personal tokens (version 1.1) over HTTP: named, expiring, listed without the
secret, and
kept by no cache; operator keys and operator status taken back stop working at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI

from creditpool.services import operators, users
from creditpool.storage.unit_of_work import UnitOfWork
from tests.api.support import OPERATOR_KEY, PASSWORD, Api, World, problem
from tests.support.clock import START, FakeClock

LISTED = {"id", "name", "created_at", "last_used_at", "expires_at"}


@pytest.fixture
def uow_of_app(app: FastAPI) -> UnitOfWork:
    """A unit of work inside the application's rolled-back transaction: what the command line
    and the console do, seen by the API at once."""
    return UnitOfWork(app.state.session_factory, app.state.clock)


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _issue(api: Api, email: str, **options: Any) -> dict[str, Any]:
    issued = api.call("POST", "/tokens", json={"email": email, "password": PASSWORD, **options})
    assert issued.status_code == 201, issued.text
    assert issued.headers["cache-control"] == "no-store"
    body: dict[str, Any] = issued.json()
    return body


def test_a_named_expiring_token_works_until_its_instant_then_401s_like_a_revoked_one(
    api: Api, clock: FakeClock
) -> None:
    user, first = api.sign_up("Tess")
    hourly = _issue(api, user["email"], name="CI runner", expires_in=3600)
    assert set(hourly) == {"id", "token", "name", "expires_at"}
    assert hourly["name"] == "CI runner"
    assert _instant(hourly["expires_at"]) == START + timedelta(hours=1)
    plain = _issue(api, user["email"])
    assert (plain["name"], plain["expires_at"]) == ("", None)

    clock.advance(minutes=59, seconds=59)
    assert api.call("GET", "/me", token=hourly["token"]).status_code == 200
    clock.advance(seconds=1)
    problem(api.call("GET", "/me", token=hourly["token"]), 401, "unauthenticated")
    assert api.call("GET", "/me", token=plain["token"]).status_code == 200
    # Gone from the list too; the others stay.
    listed = api.call("GET", "/tokens", token=first).json()["items"]
    assert hourly["id"] not in {item["id"] for item in listed}
    assert plain["id"] in {item["id"] for item in listed}


def test_tokens_are_listed_for_their_user_only_never_with_the_secret(
    api: Api, clock: FakeClock
) -> None:
    user, first = api.sign_up("Tess")
    _, other = api.sign_up("Omar")
    ci = _issue(api, user["email"], name="CI", expires_in=86_400)
    revoked = _issue(api, user["email"], name="old laptop")
    assert api.call("DELETE", f"/tokens/{revoked['id']}", token=first).status_code == 204
    clock.advance(minutes=2)
    assert api.call("GET", "/me", token=ci["token"]).status_code == 200  # last used now

    listed = api.call("GET", "/tokens", token=first)
    assert listed.status_code == 200, listed.text
    assert listed.headers["cache-control"] == "no-store"
    body = listed.json()
    assert set(body) == {"items", "next_cursor"}
    assert body["next_cursor"] is None
    items = {item["id"]: item for item in body["items"]}
    assert set(items) == {ci["id"], api_token_id(api, first)}  # sign_up's own token and CI
    for item in items.values():
        assert set(item) == LISTED
    assert items[ci["id"]]["name"] == "CI"
    assert _instant(items[ci["id"]]["created_at"]) == START
    assert _instant(items[ci["id"]]["last_used_at"]) == START + timedelta(minutes=2)
    assert _instant(items[ci["id"]]["expires_at"]) == START + timedelta(days=1)
    assert ci["token"] not in listed.text
    assert first not in listed.text
    assert ci["token"].split(".")[-1] not in listed.text

    theirs = api.call("GET", "/tokens", token=other).json()["items"]
    assert ci["id"] not in {item["id"] for item in theirs}
    problem(api.call("GET", "/tokens"), 401, "unauthenticated")
    problem(api.call("GET", "/tokens", token=OPERATOR_KEY), 403, "forbidden")

    # Pages of one: the cursor leads through all of them, once each.
    page_one = api.call("GET", "/tokens", token=first, params={"limit": 1}).json()
    assert page_one["next_cursor"] is not None
    page_two = api.call(
        "GET", "/tokens", token=first, params={"limit": 1, "cursor": page_one["next_cursor"]}
    ).json()
    assert page_two["next_cursor"] is None
    assert {i["id"] for i in page_one["items"] + page_two["items"]} == set(items)


def api_token_id(api: Api, token: str) -> str:
    """The id a personal token carries (cpt.<id>.<secret>)."""
    return token.split(".")[1]


def test_a_lifetime_outside_a_minute_to_a_year_is_refused_and_makes_no_token(api: Api) -> None:
    user, first = api.sign_up("Tess")
    for wrong in (59, 31_536_001, 0, -5, "3600", 3600.5, True):
        answer = api.call(
            "POST",
            "/tokens",
            json={"email": user["email"], "password": PASSWORD, "expires_in": wrong},
        )
        problem(answer, 422, "validation_error")
    problem(
        api.call(
            "POST",
            "/tokens",
            json={"email": user["email"], "password": PASSWORD, "name": "x" * 201},
        ),
        422,
        "validation_error",
    )
    assert len(api.call("GET", "/tokens", token=first).json()["items"]) == 1
    for right in (60, 31_536_000):
        assert _issue(api, user["email"], expires_in=right)["expires_at"] is not None


def test_the_openapi_document_states_the_lifetime_bounds(api: Api) -> None:
    document = api.client.get("/api/v1/openapi.json").json()
    request = document["components"]["schemas"]["TokenRequest"]["properties"]["expires_in"]
    bounded = [part for part in request.get("anyOf", [request]) if part.get("type") == "integer"]
    assert bounded == [{"type": "integer", "minimum": 60, "maximum": 31_536_000}]
    assert "/api/v1/tokens" in document["paths"]
    assert "get" in document["paths"]["/api/v1/tokens"]


def test_a_new_api_key_answer_is_kept_by_no_cache(world: World) -> None:
    created = world.api.call(
        "POST",
        f"/orgs/{world.org_id}/api-keys",
        token=world.owner,
        json={"name": "farm 2", "scopes": ["usage"]},
    )
    assert created.status_code == 201, created.text
    assert created.headers["cache-control"] == "no-store"


def test_a_revoked_operator_key_is_refused_at_once(world: World, uow_of_app: UnitOfWork) -> None:
    key = operators.create_operator_key(uow_of_app, name="billing")
    assert world.api.call("GET", "/orgs", token=key.secret).status_code == 200
    operators.revoke_operator_key(uow_of_app, key.id)
    problem(world.api.call("GET", "/orgs", token=key.secret), 401, "unauthenticated")
    assert world.api.call("GET", "/orgs", token=OPERATOR_KEY).status_code == 200


def test_an_operator_whose_status_is_taken_back_is_refused_at_once(
    world: World, uow_of_app: UnitOfWork
) -> None:
    api = world.api
    user, token = api.sign_up("Vera")
    users.grant_operator(uow_of_app, user["email"])
    opened = api.call(
        "POST", "/orgs", token=token, json={"name": "By Vera", "owner_email": user["email"]}
    )
    assert opened.status_code == 201, opened.text
    operators.revoke_operator(uow_of_app, user["email"])
    refused = api.call(
        "POST", "/orgs", token=token, json={"name": "Again", "owner_email": user["email"]}
    )
    problem(refused, 403, "forbidden")
