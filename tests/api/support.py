"""Helpers for API tests: a client that knows tokens, and a small cast of callers."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any

import httpx2 as httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient

OPERATOR_KEY = "cpo-test-operator-key-0123456789"
PUBLIC_URL = "http://creditpool.test"
PASSWORD = "correct horse battery"
_numbers = itertools.count(1)


def bearer(token: str | None) -> dict[str, str]:
    """Return the Authorization header for a token (none for None)."""
    return {} if token is None else {"Authorization": f"Bearer {token}"}


@dataclass
class Api:
    """The test client, with the calls most tests need."""

    client: TestClient

    def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        key: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> httpx.Response:
        """Send a request to /api/v1 + path as the holder of `token`."""
        headers = bearer(token)
        if key is not None:
            headers["Idempotency-Key"] = key
        return self.client.request(
            method, f"/api/v1{path}", headers=headers, json=json, params=params
        )

    def sign_up(self, name: str = "Person") -> tuple[dict[str, Any], str]:
        """Create a user with a unique e-mail; return it and a personal token."""
        email = f"person{next(_numbers)}@example.test"
        created = self.call(
            "POST", "/users", json={"email": email, "password": PASSWORD, "name": name}
        )
        assert created.status_code == 201, created.text
        issued = self.call("POST", "/tokens", json={"email": email, "password": PASSWORD})
        assert issued.status_code == 201, issued.text
        return created.json(), issued.json()["token"]


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert the response is a problem+json of this status and code; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["title"]
    assert isinstance(body["detail"], str)
    return body


@dataclass
class World:
    """An org with its people: tokens by role, member ids, and a usage key."""

    api: Api
    org: dict[str, Any]
    owner: str
    manager: str
    students: list[str]  # tokens
    student_ids: list[str]  # member ids
    manager_id: str
    owner_id: str
    usage_key: str
    stranger: str  # a signed-in user of another org, its owner
    other_org: dict[str, Any] = field(default_factory=dict)

    operator: str = OPERATOR_KEY

    @property
    def org_id(self) -> str:
        return str(self.org["id"])

    @classmethod
    def build(
        cls, api: Api, *, purchase: str = "100", students: int = 2, parent: str | None = None
    ) -> World:
        """The cast in an org of its own, or (with `parent`) in a child org of `parent`."""
        owner_user, owner = api.sign_up("Owner")
        org = api.call(
            "POST",
            "/orgs" if parent is None else f"/orgs/{parent}/children",
            token=OPERATOR_KEY,
            json={"name": "Render class", "owner_email": owner_user["email"]},
        ).json()
        org_id = org["id"]
        api.call("POST", f"/orgs/{org_id}/purchases", token=OPERATOR_KEY, json={"amount": purchase})
        code = org["invite_code"]
        _, manager = api.sign_up("Manager")
        manager_id = api.call("POST", f"/join/{code}", token=manager).json()["id"]
        api.call(
            "PATCH", f"/orgs/{org_id}/members/{manager_id}", token=owner, json={"role": "manager"}
        )
        tokens, ids = [], []
        for number in range(students):
            _, token = api.sign_up(f"Student {number + 1}")
            joined = api.call("POST", f"/join/{code}", token=token)
            assert joined.status_code == 201, joined.text
            tokens.append(token)
            ids.append(joined.json()["id"])
        key = api.call(
            "POST",
            f"/orgs/{org_id}/api-keys",
            token=owner,
            json={"name": "farm", "scopes": ["usage"]},
        ).json()["key"]
        stranger_user, stranger = api.sign_up("Stranger")
        other = api.call(
            "POST",
            "/orgs",
            token=OPERATOR_KEY,
            json={"name": "Other class", "owner_email": stranger_user["email"]},
        ).json()
        me = api.call("GET", "/me", token=owner).json()
        return cls(
            api=api,
            org=org,
            owner=owner,
            manager=manager,
            students=tokens,
            student_ids=ids,
            manager_id=manager_id,
            owner_id=me["memberships"][0]["member_id"],
            usage_key=key,
            stranger=stranger,
            other_org=other,
        )


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None, html[:500]
    return found.group(1)


def signed_in_browser(app: FastAPI, email: str, password: str = PASSWORD) -> TestClient:
    """A browser-like client of its own (its own cookies), signed in through the form."""
    browser = TestClient(app, raise_server_exceptions=False)
    form = browser.get("/sign-in")
    signed = browser.post(
        "/sign-in",
        data={"email": email, "password": password, "csrf_token": csrf_of(form.text)},
        follow_redirects=False,
    )
    assert signed.status_code == 303, signed.text
    return browser
