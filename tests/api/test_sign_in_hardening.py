"""Signing in, up and out over the API with the rate limits on: locked-out addresses, anonymous
callers over their limit, password change and reset, and confirmed addresses."""

from __future__ import annotations

from dataclasses import replace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from creditpool.config import Config
from creditpool.storage.schema import MailMessage
from creditpool.storage.unit_of_work import UnitOfWork
from tests.api.support import (
    OPERATOR_KEY,
    PASSWORD,
    PUBLIC_URL,
    Api,
    problem,
    signed_in_browser,
)
from tests.support.clock import FakeClock

FAILED_PASSWORD_LIMIT = 3


@pytest.fixture
def config(engine: Engine) -> Config:
    """Rate limits on: three failed passwords per address, plenty of anonymous calls."""
    return Config(
        database_url=str(engine.url),
        public_url=PUBLIC_URL,
        operator_key=OPERATOR_KEY,
        secret_key="a session secret for the tests",
        rate_limits=True,
        failed_password_limit=FAILED_PASSWORD_LIMIT,
        anonymous_limit_per_minute=1000,
    )


def link_mailed_to(app: FastAPI, address: str) -> str:
    """The secret link of the newest message to `address` in the outbox."""
    with UnitOfWork(app.state.session_factory) as uow:
        message = uow.session.scalars(
            select(MailMessage)
            .where(MailMessage.to_address == address)
            .order_by(MailMessage.id.desc())
        ).first()
        assert message is not None
        assert message.secret_link is not None
        return message.secret_link


def sign_up(api: Api, email: str) -> None:
    created = api.call("POST", "/users", json={"email": email, "password": PASSWORD, "name": "A"})
    assert created.status_code == 201, created.text


def token_for(api: Api, email: str, password: str = PASSWORD) -> str:
    issued = api.call("POST", "/tokens", json={"email": email, "password": password})
    assert issued.status_code == 201, issued.text
    return str(issued.json()["token"])


def test_failed_passwords_lock_the_address_for_the_rest_of_the_window(
    api: Api, clock: FakeClock
) -> None:
    sign_up(api, "ada@example.test")
    clock.advance(minutes=5)  # the 15-minute window 00:00-00:15 has 10 minutes left
    wrong = {"email": "ada@example.test", "password": "a wrong guess"}
    for _ in range(FAILED_PASSWORD_LIMIT):
        problem(api.call("POST", "/tokens", json=wrong), 401, "unauthenticated")
    # Locked: even the right password is refused, with when to come back.
    right = {"email": "ADA@example.test", "password": PASSWORD}
    locked = api.call("POST", "/tokens", json=right)
    problem(locked, 429, "rate_limited")
    assert locked.headers["Retry-After"] == str(10 * 60)
    # Other addresses are not affected.
    sign_up(api, "bo@example.test")
    token_for(api, "bo@example.test")
    # The lock lasts at most the window.
    clock.advance(minutes=10)
    token_for(api, "ada@example.test")


def test_anonymous_calls_are_limited_per_client_address(
    api: Api, app: FastAPI, clock: FakeClock
) -> None:
    app.state.config = replace(app.state.config, anonymous_limit_per_minute=6)
    clock.advance(seconds=45)
    sign_up(api, "cleo@example.test")  # 1
    token = token_for(api, "cleo@example.test")  # 2
    for _ in range(4):  # 3 to 6
        answer = api.call("POST", "/password-resets", json={"email": "x@example.test"})
        assert answer.status_code == 202, answer.text
    for call in (
        lambda: api.call("POST", "/tokens", json={"email": "cleo@example.test", "password": "x"}),
        lambda: api.call("POST", "/users", json={"email": "d@example.test", "password": PASSWORD}),
        lambda: api.call("POST", "/password-resets/x.y", json={"password": PASSWORD}),
    ):
        refused = call()
        problem(refused, 429, "rate_limited")
        assert refused.headers["Retry-After"] == "15"
    # A signed-in person joining or accepting is counted as themselves, not as the address (a
    # class behind one school address joins together), and has a limit of their own.
    for _ in range(3):
        problem(api.call("POST", "/join/no-such-code", token=token), 404, "invite_invalid")
        problem(api.call("POST", "/invitations/nothing/accept", token=token), 404, "invite_invalid")
    problem(api.call("POST", "/join/no-such-code", token=token), 429, "rate_limited")
    problem(api.call("POST", "/invitations/nothing/accept", token=token), 429, "rate_limited")
    # Other calls with a token are not limited: they go on.
    assert api.call("GET", "/me", token=token).status_code == 200
    clock.advance(seconds=15)  # the next minute
    assert api.call("POST", "/password-resets", json={"email": "x@example.test"}).status_code == 202


def test_limits_switched_off_count_nothing(api: Api, app: FastAPI) -> None:
    app.state.config = replace(
        app.state.config, rate_limits=False, anonymous_limit_per_minute=1, failed_password_limit=1
    )
    sign_up(api, "dan@example.test")
    for _ in range(3):
        wrong = {"email": "dan@example.test", "password": "wrong"}
        problem(api.call("POST", "/tokens", json=wrong), 401, "unauthenticated")
    token_for(api, "dan@example.test")


def test_the_password_is_changed_with_the_current_one(api: Api) -> None:
    sign_up(api, "eve@example.test")
    token = token_for(api, "eve@example.test")
    change = {"current_password": "not the password", "new_password": "a brand new password"}
    problem(api.call("POST", "/me/password", token=token, json=change), 403, "forbidden")
    short = {"current_password": PASSWORD, "new_password": "short"}
    problem(api.call("POST", "/me/password", token=token, json=short), 422, "validation_error")
    change["current_password"] = PASSWORD
    changed = api.call("POST", "/me/password", token=token, json=change)
    assert changed.status_code == 204, changed.text
    problem(
        api.call("POST", "/tokens", json={"email": "eve@example.test", "password": PASSWORD}),
        401,
        "unauthenticated",
    )
    token_for(api, "eve@example.test", "a brand new password")


def test_wrong_current_passwords_count_toward_the_lock(api: Api) -> None:
    sign_up(api, "fay@example.test")
    token = token_for(api, "fay@example.test")
    change = {"current_password": "a guess", "new_password": "a brand new password"}
    for _ in range(FAILED_PASSWORD_LIMIT):
        problem(api.call("POST", "/me/password", token=token, json=change), 403, "forbidden")
    change["current_password"] = PASSWORD
    problem(api.call("POST", "/me/password", token=token, json=change), 429, "rate_limited")


def test_a_password_reset_is_mailed_and_works_once(api: Api, app: FastAPI) -> None:
    sign_up(api, "gus@example.test")
    for email in ("gus@example.test", "nobody@example.test", "not an address"):
        answer = api.call("POST", "/password-resets", json={"email": email})
        assert answer.status_code == 202, answer.text
        assert answer.content == b""  # the same for every address
    link = link_mailed_to(app, "gus@example.test")
    assert link.startswith(f"{PUBLIC_URL}/password-reset/")
    token = link.rpartition("/")[2]
    problem(
        api.call("POST", f"/password-resets/{token}", json={"password": "short"}),
        422,
        "validation_error",
    )
    done = api.call("POST", f"/password-resets/{token}", json={"password": "chosen by mail"})
    assert done.status_code == 204, done.text
    problem(
        api.call("POST", f"/password-resets/{token}", json={"password": "chosen twice"}),
        404,
        "not_found",
    )
    token_for(api, "gus@example.test", "chosen by mail")


def test_sign_up_mails_a_link_that_confirms_the_address(api: Api, app: FastAPI) -> None:
    sign_up(api, "hal@example.test")
    token = token_for(api, "hal@example.test")
    assert api.call("GET", "/me", token=token).json()["user"]["email_verified"] is False
    link = link_mailed_to(app, "hal@example.test")
    assert link.startswith(f"{PUBLIC_URL}/verify-email/")
    opened = api.client.get(link.removeprefix(PUBLIC_URL), follow_redirects=False)
    assert opened.status_code == 303
    assert api.call("GET", "/me", token=token).json()["user"]["email_verified"] is True
    again = api.client.get(link.removeprefix(PUBLIC_URL), follow_redirects=False)
    assert again.status_code == 404  # single use


def test_a_taken_address_is_refused_without_naming_it(api: Api) -> None:
    sign_up(api, "ivy@example.test")
    taken = api.call(
        "POST", "/users", json={"email": "IVY@example.test", "password": PASSWORD, "name": "I"}
    )
    body = problem(taken, 409, "already_exists")
    assert "ivy" not in body["detail"].lower()


def test_the_join_page_counts_a_signed_in_person_apart_from_the_address(
    api: Api, app: FastAPI
) -> None:
    sign_up(api, "eve@example.test")
    app.state.config = replace(app.state.config, anonymous_limit_per_minute=3)
    browser = signed_in_browser(app, "eve@example.test")

    # Signed in, Eve's visits to join links are her own: three, then her limit.
    for _ in range(3):
        assert browser.get("/join/no-such-code").status_code == 404
    assert browser.get("/join/no-such-code").status_code == 429
    # The address (a whole class behind it) has had two anonymous requests, Eve's sign-up
    # and sign-in: one is left.
    stranger = TestClient(app, raise_server_exceptions=False)
    assert stranger.get("/join/no-such-code").status_code == 404
    assert stranger.get("/join/no-such-code").status_code == 429
