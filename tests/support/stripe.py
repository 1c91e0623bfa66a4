"""A local HTTP server standing in for Stripe's API, events signed as Stripe signs them, and
the `purchase.completed` webhook events a purchase writes.

The `stripe` library is pointed at the stand-in (CREDITPOOL_STRIPE_API_BASE), which records
each call (path, headers, form fields) and answers a Checkout Session with a payment page URL.
Events are signed the way Stripe documents: `t=<unix seconds>,v1=<hex HMAC-SHA256 keyed with
the webhook secret over "<t>.<body>">`.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI
from sqlalchemy import select

from creditpool.services import webhooks
from creditpool.storage.schema import WebhookEvent
from creditpool.storage.unit_of_work import UnitOfWork

PAGE = "https://checkout.stripe.test/c/pay/"


@dataclass(frozen=True)
class StripeCall:
    """One request the stand-in received."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    form: dict[str, str]


@dataclass
class StripeStandIn:
    """What the stand-in received, and how it answers next."""

    url: str
    calls: list[StripeCall] = field(default_factory=list)
    refuse_with: int | None = None  # answer this error status instead of a session
    _numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def answer(self, call: StripeCall) -> tuple[int, dict[str, Any]]:
        """The status and JSON body for one call."""
        if self.refuse_with is not None:
            error = {"type": "invalid_request_error", "message": "refused by the stand-in"}
            return self.refuse_with, {"error": error}
        if (call.method, call.path) != ("POST", "/v1/checkout/sessions"):
            return 404, {"error": {"type": "invalid_request_error", "message": "unknown path"}}
        session_id = f"cs_test_{next(self._numbers):04d}"
        return 200, {
            "id": session_id,
            "object": "checkout.session",
            "url": PAGE + session_id,
            "status": "open",
            "payment_status": "unpaid",
            "client_reference_id": call.form.get("client_reference_id"),
            "mode": call.form.get("mode"),
        }


@contextmanager
def stripe_stand_in() -> Iterator[StripeStandIn]:
    """Serve the stand-in on a free port of 127.0.0.1 for the duration."""
    stand_in: StripeStandIn

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length).decode()
            call = StripeCall(
                "POST",
                self.path,
                {name.lower(): value for name, value in self.headers.items()},
                dict(parse_qsl(body, keep_blank_values=True)),
            )
            stand_in.calls.append(call)
            status, answer = stand_in.answer(call)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.send_header("request-id", "req_stand_in")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return  # quiet: the test's output is the place for failures only

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    stand_in = StripeStandIn(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stand_in
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def stripe_signature(payload: bytes, secret: str, *, at: int | None = None) -> str:
    """The Stripe-Signature header Stripe would send with `payload` (at `at`, Unix seconds)."""
    timestamp = int(time.time()) if at is None else at
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def session_event(
    event_type: str, session_id: str, org_id: str, *, payment_status: str = "paid"
) -> bytes:
    """The body of one of Stripe's events about a Checkout Session."""
    event = {
        "id": f"evt_{session_id}_{event_type.rpartition('.')[2]}",
        "object": "event",
        "api_version": "2025-01-27.acacia",
        "created": int(time.time()),
        "livemode": False,
        "type": event_type,
        "data": {
            "object": {
                "id": session_id,
                "object": "checkout.session",
                "client_reference_id": org_id,
                "payment_status": payment_status,
                "status": "complete" if payment_status == "paid" else "expired",
                "mode": "payment",
            }
        },
    }
    return json.dumps(event).encode()


def subscribe_to_purchases(app: FastAPI, org_id: str) -> None:
    """Give the org a webhook endpoint for `purchase.completed`, so that its events are written."""
    uow = UnitOfWork(app.state.session_factory, app.state.clock)
    webhooks.create_endpoint(
        uow,
        org_id,
        url="https://hooks.example.test/creditpool",
        events=["purchase.completed"],
        actor="operator",
    )


def purchase_events(app: FastAPI, org_id: str) -> list[dict[str, Any]]:
    """The `data` of the org's `purchase.completed` events in the outbox, oldest first."""
    uow = UnitOfWork(app.state.session_factory, app.state.clock)
    with uow:
        bodies = uow.session.scalars(
            select(WebhookEvent.body)
            .where(WebhookEvent.org_id == org_id, WebhookEvent.type == "purchase.completed")
            .order_by(WebhookEvent.id)
        )
        return [json.loads(body)["data"] for body in bodies]
