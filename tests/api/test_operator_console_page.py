"""The operator console, in process: every list on it is bounded, and says when there is more."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import sessionmaker

from creditpool.services import users
from creditpool.storage.unit_of_work import UnitOfWork
from creditpool.web import pages_operator
from tests.api.support import OPERATOR_KEY, PASSWORD, Api, csrf_of, signed_in_browser


def _operator_signed_in(app: FastAPI, api: Api, email: str) -> TestClient:
    created = api.call("POST", "/users", json={"email": email, "password": PASSWORD, "name": "Op"})
    assert created.status_code == 201, created.text
    factory: sessionmaker = app.state.session_factory  # type: ignore[type-arg]
    users.grant_operator(UnitOfWork(factory, app.state.clock), email)
    return signed_in_browser(app, email)


def test_the_console_shows_a_page_of_orgs_and_the_first_operators_and_keys(
    app: FastAPI, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pages_operator, "PAGE", 2)
    monkeypatch.setattr(pages_operator, "SHOWN", 1)
    console = _operator_signed_in(app, api, "vera@vendor.test")
    _operator_signed_in(app, api, "walt@vendor.test")
    owner = api.call(
        "POST", "/users", json={"email": "o@x.test", "password": PASSWORD, "name": "Owner"}
    )
    assert owner.status_code == 201
    for name in ("First class", "Second class", "Third class"):
        opened = api.call(
            "POST", "/orgs", token=OPERATOR_KEY, json={"name": name, "owner_email": "o@x.test"}
        )
        assert opened.status_code == 201, opened.text

    first = console.get("/operator")
    assert first.status_code == 200
    assert "Every org (3)" in first.text
    listed = re.findall(r'<tr data-org="([^"]+)">', first.text)
    assert len(listed) == 2
    after = re.search(r'href="/operator\?after=([^"#]+)', first.text)
    assert after is not None
    second = console.get(f"/operator?after={after.group(1)}")
    rest = re.findall(r'<tr data-org="([^"]+)">', second.text)
    assert len(rest) == 1
    assert sorted(listed + rest) == ["First class", "Second class", "Third class"]
    assert "/operator?after=" not in second.text  # the last page

    assert len(re.findall(r"<li data-operator=", first.text)) == 1
    assert "More operators than these first" in first.text


def test_a_purchase_recorded_in_the_console_can_lapse_after_a_day_of_the_orgs_zone(
    app: FastAPI, api: Api
) -> None:
    console = _operator_signed_in(app, api, "vera@vendor.test")
    owner = api.call(
        "POST", "/users", json={"email": "o@x.test", "password": PASSWORD, "name": "Owner"}
    )
    assert owner.status_code == 201
    opened = api.call(
        "POST",
        "/orgs",
        token=OPERATOR_KEY,
        json={
            "name": "Paris class",
            "owner_email": "o@x.test",
            "settings": {"timezone": "Europe/Paris"},
        },
    )
    assert opened.status_code == 201, opened.text
    org = opened.json()["id"]
    page = console.get("/operator").text
    form = {"csrf_token": csrf_of(page), "amount": "30", "reference": "trial"}

    refused = console.post(
        f"/operator/orgs/{org}/purchases", data={**form, "expires_after": "28/02/2026"}
    )
    assert refused.status_code == 422
    assert "a date such as" in refused.text
    wrong_priority = console.post(f"/operator/orgs/{org}/purchases", data={**form, "priority": "x"})
    assert wrong_priority.status_code == 422
    assert api.call("GET", f"/orgs/{org}/lots", token=OPERATOR_KEY).json()["items"] == []

    done = console.post(
        f"/operator/orgs/{org}/purchases",
        data={**form, "expires_after": "2026-02-28", "priority": "10"},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    (lot,) = api.call("GET", f"/orgs/{org}/lots", token=OPERATOR_KEY).json()["items"]
    # The end of 28 February in Paris (UTC+1 in winter) is 23:00 UTC.
    assert (lot["amount"], lot["priority"], lot["expires_at"]) == (
        "30",
        10,
        "2026-02-28T23:00:00Z",
    )


def test_the_console_refuses_a_priority_or_a_day_it_cannot_read(app: FastAPI, api: Api) -> None:
    console = _operator_signed_in(app, api, "vera@vendor.test")
    owner = api.call(
        "POST", "/users", json={"email": "o@x.test", "password": PASSWORD, "name": "Owner"}
    )
    assert owner.status_code == 201
    opened = api.call(
        "POST", "/orgs", token=OPERATOR_KEY, json={"name": "Class", "owner_email": "o@x.test"}
    )
    org = opened.json()["id"]
    form = {"csrf_token": csrf_of(console.get("/operator").text), "amount": "30"}
    for field, value in (("priority", "²"), ("priority", "1000"), ("expires_after", "9999-12-31")):
        refused = console.post(f"/operator/orgs/{org}/purchases", data={**form, field: value})
        assert refused.status_code == 422, (field, value, refused.status_code)
    assert api.call("GET", f"/orgs/{org}/lots", token=OPERATOR_KEY).json()["items"] == []
