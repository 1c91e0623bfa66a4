"""Buying credits in the pages, refused: the reason shows beside the form it came from and
nothing changes (the browser tests in tests/web show the happy paths). Both engines."""

from __future__ import annotations

import httpx2 as httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient

from creditpool.services import users
from creditpool.storage.unit_of_work import UnitOfWork
from tests.api.support import World, csrf_of, signed_in_browser


def _email(world: World, token: str) -> str:
    return str(world.api.call("GET", "/me", token=token).json()["user"]["email"])


def _post(browser: TestClient, page: str, action: str, data: dict[str, str]) -> httpx.Response:
    form = browser.get(page)
    assert form.status_code == 200, form.text
    return browser.post(
        action, data={**data, "csrf_token": csrf_of(form.text)}, follow_redirects=False
    )


def _requests(world: World) -> list[dict[str, str]]:
    listed = world.api.call("GET", f"/orgs/{world.org_id}/purchase-requests", token=world.operator)
    return list(listed.json()["items"])


def test_refusals_show_beside_the_buy_credits_form(app: FastAPI, world: World) -> None:
    owner = signed_in_browser(app, _email(world, world.owner))
    page, org = f"/orgs/{world.org_id}", world.org_id

    refused = _post(owner, page, f"/orgs/{org}/purchase-requests", {"amount": "0"})
    assert refused.status_code == 422
    assert 'id="error-buy"' in refused.text
    unavailable = _post(owner, page, f"/orgs/{org}/checkout", {"amount": "5"})
    assert unavailable.status_code == 409
    assert "not set up on this server" in unavailable.text
    assert "Pay by card" not in owner.get(page).text  # no checkout without Stripe
    assert _requests(world) == []

    manager = signed_in_browser(app, _email(world, world.manager))
    assert 'id="buy"' not in manager.get(page).text  # buying is the owner's
    forbidden = _post(manager, page, f"/orgs/{org}/purchase-requests", {"amount": "5"})
    assert forbidden.status_code == 403
    assert _requests(world) == []


def test_the_console_refuses_to_approve_a_declined_request(app: FastAPI, world: World) -> None:
    person, _ = world.api.sign_up("Vera Vendor")
    users.grant_operator(UnitOfWork(app.state.session_factory, app.state.clock), person["email"])
    operator = signed_in_browser(app, person["email"])
    asked = world.api.call(
        "POST",
        f"/orgs/{world.org_id}/purchase-requests",
        token=world.owner,
        json={"amount": "5"},
    ).json()
    base = f"/operator/orgs/{world.org_id}/purchase-requests/{asked['id']}"

    declined = _post(operator, "/operator", f"{base}/decline", {"reason": "not now"})
    assert declined.status_code == 303
    approved = _post(operator, "/operator", f"{base}/approve", {"reference": ""})

    assert approved.status_code == 409
    assert 'id="error-requests"' in approved.text
    assert "declined already" in approved.text
    assert [item["status"] for item in _requests(world)] == ["declined"]
