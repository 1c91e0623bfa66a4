"""Purchase requests over HTTP: an owner asks for credits, the operator approves (the pool is
credited once, whatever the retries) or declines (never credited), and the owner is mailed the
outcome through the outbox, delivered to a real SMTP server on localhost. Both engines."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI

from creditpool.config import Config
from creditpool.storage.unit_of_work import UnitOfWork
from creditpool.worker import run_once
from tests.api.support import PUBLIC_URL, World, problem
from tests.support.smtp import SmtpServer, smtp_server
from tests.support.stripe import purchase_events, subscribe_to_purchases


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


def _available(world: World) -> str:
    response = world.api.call("GET", f"/orgs/{world.org_id}/balance", token=world.owner)
    assert response.status_code == 200, response.text
    return str(response.json()["available"])


def _ask(world: World, amount: str = "40", note: str | None = "term two") -> dict[str, Any]:
    body: dict[str, Any] = {"amount": amount}
    if note is not None:
        body["note"] = note
    asked = world.api.call(
        "POST", f"/orgs/{world.org_id}/purchase-requests", token=world.owner, json=body
    )
    assert asked.status_code == 201, asked.text
    return dict(asked.json())


def _decide(
    world: World, request_id: str, verdict: str, body: Any = None, *, key: str | None = None
) -> Any:
    path = f"/orgs/{world.org_id}/purchase-requests/{request_id}/{verdict}"
    return world.api.call("POST", path, token=world.operator, json=body, key=key)


def _purchases(world: World) -> list[dict[str, Any]]:
    listed = world.api.call(
        "GET", f"/orgs/{world.org_id}/transfers", token=world.owner, params={"kind": "purchase"}
    )
    assert listed.status_code == 200, listed.text
    return list(listed.json()["items"])


def test_the_operator_approves_once_whatever_the_retries(world: World) -> None:
    assert _available(world) == "100"
    asked = _ask(world, "40", "term two")
    assert asked["status"] == "pending"
    assert (asked["amount"], asked["note"]) == ("40", "term two")
    assert (asked["decided_at"], asked["transfer_id"]) == (None, None)
    assert _available(world) == "100"  # asking credits nothing

    approved = _decide(world, asked["id"], "approve", {"reference": "INV-7"})
    again = _decide(world, asked["id"], "approve", {"reference": "INV-7"})
    keyed = [_decide(world, asked["id"], "approve", key="approve-once") for _ in range(2)]

    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert body["status"] == "approved"
    assert body["decided_at"] is not None
    transfer_id = body["transfer_id"]
    assert transfer_id
    for retry in [again, *keyed]:
        assert retry.status_code == 200, retry.text
        assert retry.json()["transfer_id"] == transfer_id
    assert _available(world) == "140"
    bought = [item for item in _purchases(world) if item["id"] == transfer_id]
    assert [(item["amount"], item["reference"]) for item in bought] == [("40", "INV-7")]
    assert len(_purchases(world)) == 2  # the world's first 100, and this one only
    listed = world.api.call(
        "GET", f"/orgs/{world.org_id}/purchase-requests", token=world.owner
    ).json()
    assert [(item["id"], item["status"]) for item in listed["items"]] == [(asked["id"], "approved")]


def test_only_the_owner_asks_and_only_the_operator_decides(world: World) -> None:
    api, path = world.api, f"/orgs/{world.org_id}/purchase-requests"

    for token in (world.manager, world.students[0]):
        problem(api.call("POST", path, token=token, json={"amount": "5"}), 403, "forbidden")
        problem(api.call("GET", path, token=token), 403, "forbidden")
    problem(api.call("POST", path, token=world.stranger, json={"amount": "5"}), 404, "not_found")
    asked = _ask(world, "5")
    for token in (world.owner, world.manager):
        decided = api.call("POST", f"{path}/{asked['id']}/approve", token=token)
        problem(decided, 403, "forbidden")
        problem(api.call("POST", f"{path}/{asked['id']}/decline", token=token), 403, "forbidden")
    # The operator lists the org's requests too; another org's path knows none of them.
    listed = api.call("GET", path, token=world.operator, params={"status": "pending"})
    assert [item["id"] for item in listed.json()["items"]] == [asked["id"]]
    other = f"/orgs/{world.other_org['id']}/purchase-requests/{asked['id']}/approve"
    problem(api.call("POST", other, token=world.operator), 404, "not_found")
    assert _available(world) == "100"


def test_a_declined_request_never_credits_and_a_decision_stands(world: World) -> None:
    declined_one, approved_one = _ask(world, "25"), _ask(world, "10")

    declined = _decide(world, declined_one["id"], "decline", {"reason": "budget is spent"})
    assert declined.status_code == 200, declined.text
    assert (declined.json()["status"], declined.json()["reason"]) == (
        "declined",
        "budget is spent",
    )
    assert declined.json()["transfer_id"] is None
    problem(_decide(world, declined_one["id"], "approve"), 409, "request_decided")
    problem(_decide(world, declined_one["id"], "approve", key="k1"), 409, "request_decided")
    assert _decide(world, declined_one["id"], "decline").json()["status"] == "declined"
    assert _available(world) == "100"

    assert _decide(world, approved_one["id"], "approve").status_code == 200
    problem(_decide(world, approved_one["id"], "decline", {"reason": "no"}), 409, "request_decided")
    assert _available(world) == "110"

    by_status = world.api.call(
        "GET",
        f"/orgs/{world.org_id}/purchase-requests",
        token=world.owner,
        params={"status": "declined"},
    ).json()["items"]
    assert [item["id"] for item in by_status] == [declined_one["id"]]


def test_bad_requests_change_nothing(world: World) -> None:
    api, path = world.api, f"/orgs/{world.org_id}/purchase-requests"

    problem(api.call("POST", path, token=world.owner, json={"amount": "0"}), 422, "invalid_amount")
    problem(
        api.call("POST", path, token=world.owner, json={"amount": "5", "note": "x" * 501}),
        422,
        "validation_error",
    )
    problem(
        api.call("POST", path, token=world.owner, json={"amount": "5", "note": "a\u202eb"}),
        422,
        "validation_error",
    )
    problem(
        api.call("GET", path, token=world.owner, params={"status": "x"}), 422, "validation_error"
    )
    problem(_decide(world, "prq_nothing", "approve"), 404, "not_found")
    assert api.call("GET", path, token=world.owner).json()["items"] == []


def test_the_owner_is_mailed_the_outcome(app: FastAPI, world: World, smtp: SmtpServer) -> None:
    owner_email = world.api.call("GET", "/me", token=world.owner).json()["user"]["email"]
    mailer = Config(public_url=PUBLIC_URL, smtp_url=smtp.url)
    outbox = UnitOfWork(app.state.session_factory, app.state.clock)
    run_once(outbox, mailer)  # the sign-ups' confirmation mail, out of the way
    smtp.received.clear()
    approved_one, declined_one = _ask(world, "30"), _ask(world, "12")
    run_once(outbox, mailer)
    assert smtp.received == []  # asking mails nobody

    _decide(world, approved_one["id"], "approve")
    _decide(world, approved_one["id"], "approve")  # a retry mails nothing more
    _decide(world, declined_one["id"], "decline", {"reason": "ask again in March"})
    assert run_once(outbox, mailer).mail_sent == 2

    assert {tuple(received.recipients) for received in smtp.received} == {(owner_email,)}
    subjects = sorted(str(received.message["Subject"]) for received in smtp.received)
    assert subjects == [
        "Approved: 30 credits for Render class",
        "Declined: your request for 12 credits for Render class",
    ]
    texts = {str(received.message["Subject"])[:8]: received.text for received in smtp.received}
    assert "they are in the pool of Render class" in texts["Approved"]
    assert "ask again in March" in texts["Declined"]
    assert f"{PUBLIC_URL}/orgs/{world.org_id}" in texts["Declined"]


def test_without_stripe_configured_checkout_is_unavailable(world: World) -> None:
    opened = world.api.call(
        "POST", f"/orgs/{world.org_id}/checkout", token=world.owner, json={"amount": "5"}
    )
    problem(opened, 409, "checkout_unavailable")
    event = world.api.client.post(
        "/api/v1/webhooks/stripe",
        content=b'{"type": "checkout.session.completed"}',
        headers={"content-type": "application/json", "Stripe-Signature": "t=1,v1=00"},
    )
    problem(event, 409, "checkout_unavailable")
    assert _available(world) == "100"


def test_an_approval_emits_purchase_completed_once(app: FastAPI, world: World) -> None:
    subscribe_to_purchases(app, world.org_id)
    approved_one, declined_one = _ask(world, "8"), _ask(world, "9")

    approved = _decide(world, approved_one["id"], "approve").json()
    _decide(world, approved_one["id"], "approve")
    _decide(world, declined_one["id"], "decline")

    (data,) = purchase_events(app, world.org_id)
    assert (data["id"], data["kind"], data["amount"]) == (approved["transfer_id"], "purchase", "8")
    assert (data["from"], data["to"]) == ("purchases", "pool")
