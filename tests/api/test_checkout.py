"""Buying credits by card: Stripe Checkout, with a local HTTP server standing in for Stripe's
API (the `stripe` library's base URL pointed at it) and events signed the way Stripe signs
them. A completed session credits the pool once; a replayed event credits nothing more; a
forged, stale or missing signature answers 400 and changes nothing. Both engines."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine

from creditpool.config import Config
from tests.api.support import OPERATOR_KEY, PUBLIC_URL, World, problem
from tests.support.stripe import (
    PAGE,
    StripeStandIn,
    purchase_events,
    session_event,
    stripe_signature,
    stripe_stand_in,
    subscribe_to_purchases,
)

SECRET_KEY = "sk_test_creditpool_stand_in"
WEBHOOK_SECRET = "whsec_creditpool_test_secret"
PRICE = 50  # 0.50 a credit


@pytest.fixture
def stripe() -> Iterator[StripeStandIn]:
    with stripe_stand_in() as stand_in:
        yield stand_in


@pytest.fixture
def config(engine: Engine, stripe: StripeStandIn) -> Config:
    return Config(
        database_url=str(engine.url),
        public_url=PUBLIC_URL,
        operator_key=OPERATOR_KEY,
        secret_key="a session secret for the tests",
        rate_limits=False,
        stripe_secret_key=SECRET_KEY,
        stripe_webhook_secret=WEBHOOK_SECRET,
        credit_price=PRICE,
        currency="eur",
        stripe_api_base=stripe.url,
    )


def _available(world: World) -> str:
    response = world.api.call("GET", f"/orgs/{world.org_id}/balance", token=world.owner)
    return str(response.json()["available"])


def _checkout(
    world: World, amount: Any, *, token: str | None = None, key: str | None = None
) -> Any:
    return world.api.call(
        "POST",
        f"/orgs/{world.org_id}/checkout",
        token=token or world.owner,
        json={"amount": amount},
        key=key,
    )


def _deliver(world: World, payload: bytes, signature: str | None) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    return world.api.client.post("/api/v1/webhooks/stripe", content=payload, headers=headers)


def _purchases(world: World) -> list[dict[str, Any]]:
    listed = world.api.call(
        "GET", f"/orgs/{world.org_id}/transfers", token=world.owner, params={"kind": "purchase"}
    )
    return list(listed.json()["items"])


def test_an_owner_opens_a_payment_page_at_the_configured_price(
    world: World, stripe: StripeStandIn
) -> None:
    opened = _checkout(world, "12")

    assert opened.status_code == 201, opened.text
    assert opened.json() == {"url": PAGE + "cs_test_0001"}
    (call,) = stripe.calls
    assert call.path == "/v1/checkout/sessions"
    assert call.headers["authorization"] == f"Bearer {SECRET_KEY}"
    form = call.form
    assert form["mode"] == "payment"
    assert form["line_items[0][quantity]"] == "12"
    assert form["line_items[0][price_data][unit_amount]"] == str(PRICE)
    assert form["line_items[0][price_data][currency]"] == "eur"
    assert form["line_items[0][price_data][product_data][name]"] == "Credits for Render class"
    assert form["client_reference_id"] == world.org_id
    back = f"{PUBLIC_URL}/orgs/{world.org_id}/checkout"
    assert (form["success_url"], form["cancel_url"]) == (f"{back}/done", f"{back}/cancelled")
    assert _available(world) == "100"  # nothing is credited before Stripe reports the payment


def test_a_retried_start_answers_the_first_page(world: World, stripe: StripeStandIn) -> None:
    first, again = (_checkout(world, "3", key="buy-3") for _ in range(2))

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    # Stripe was asked once, under a key of its own made from the caller's (should our answer
    # be lost, Stripe answers the same session to the same key).
    (call,) = stripe.calls
    assert call.headers["idempotency-key"].endswith(":buy-3")
    problem(_checkout(world, "4", key="buy-3"), 422, "idempotency_mismatch")
    assert len(stripe.calls) == 1


def test_a_completed_session_credits_the_pool_once(
    app: FastAPI, world: World, stripe: StripeStandIn
) -> None:
    subscribe_to_purchases(app, world.org_id)
    _checkout(world, "12")
    completed = session_event("checkout.session.completed", "cs_test_0001", world.org_id)
    signature = stripe_signature(completed, WEBHOOK_SECRET)

    first = _deliver(world, completed, signature)
    replayed = _deliver(world, completed, signature)
    resigned = _deliver(world, completed, stripe_signature(completed, WEBHOOK_SECRET))
    late = session_event("checkout.session.async_payment_succeeded", "cs_test_0001", world.org_id)
    again = _deliver(world, late, stripe_signature(late, WEBHOOK_SECRET))

    for response in (first, replayed, resigned, again):
        assert response.status_code == 200, response.text
        assert response.json() == {"received": True}
    assert _available(world) == "112"
    bought = [item for item in _purchases(world) if item["reference"] is not None]
    assert [(item["amount"], item["reference"]) for item in bought] == [
        ("12", "stripe cs_test_0001")
    ]
    # One purchase.completed event, for that purchase, whatever the replays.
    assert [(data["id"], data["amount"]) for data in purchase_events(app, world.org_id)] == [
        (bought[0]["id"], "12")
    ]


def test_a_forged_stale_or_missing_signature_changes_nothing(
    world: World, stripe: StripeStandIn
) -> None:
    _checkout(world, "12")
    completed = session_event("checkout.session.completed", "cs_test_0001", world.org_id)
    other = session_event("checkout.session.completed", "cs_test_0002", world.org_id)
    stale = stripe_signature(completed, WEBHOOK_SECRET, at=1_000_000_000)

    for signature in (
        stripe_signature(completed, "whsec_someone_else"),  # forged: another secret
        stripe_signature(other, WEBHOOK_SECRET),  # signs another body
        stale,  # a real signature, replayed years later
        "t=1,v1=00",
        "",
        None,
    ):
        refused = _deliver(world, completed, signature)
        problem(refused, 400, "invalid_signature")

    assert _available(world) == "100"
    # The session is still open: Stripe's own delivery credits it.
    assert _deliver(world, completed, stripe_signature(completed, WEBHOOK_SECRET)).is_success
    assert _available(world) == "112"


def test_events_that_are_not_a_payment_of_ours_credit_nothing(
    world: World, stripe: StripeStandIn
) -> None:
    _checkout(world, "5")
    unpaid = session_event(
        "checkout.session.completed", "cs_test_0001", world.org_id, payment_status="unpaid"
    )
    expired = session_event(
        "checkout.session.expired", "cs_test_0001", world.org_id, payment_status="unpaid"
    )
    unknown = session_event("checkout.session.completed", "cs_test_9999", world.org_id)
    elsewhere = session_event("checkout.session.completed", "cs_test_0001", "org_nobody")

    for payload in (unpaid, unknown, elsewhere, expired):
        answered = _deliver(world, payload, stripe_signature(payload, WEBHOOK_SECRET))
        assert answered.status_code == 200, answered.text

    assert _available(world) == "100"


def test_only_the_owner_buys_and_whole_credits_only(world: World, stripe: StripeStandIn) -> None:
    problem(_checkout(world, "5", token=world.manager), 403, "forbidden")
    problem(_checkout(world, "5", token=world.students[0]), 403, "forbidden")
    problem(_checkout(world, "5", token=world.stranger), 404, "not_found")
    problem(_checkout(world, "2.5"), 422, "invalid_amount")
    problem(_checkout(world, "0"), 422, "invalid_amount")
    problem(_checkout(world, "300000000"), 422, "invalid_amount")  # past one payment's ceiling

    assert stripe.calls == []


def test_stripe_refusing_answers_checkout_unavailable(world: World, stripe: StripeStandIn) -> None:
    stripe.refuse_with = 401

    problem(_checkout(world, "5"), 409, "checkout_unavailable")
    assert len(stripe.calls) == 1
