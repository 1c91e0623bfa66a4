"""The calls of version 1.1: readiness, webhooks and their deliveries, buying credits."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from creditpool.client._calls import (
    Call,
    ListCall,
    decimal_string,
    list_query,
    nothing,
    parsed,
    segment,
    without_none,
)
from creditpool.client._integration_models import (
    Checkout,
    Delivery,
    NewWebhook,
    PurchaseRequest,
    PurchaseRequestStatus,
    Readiness,
    Webhook,
)


def readiness() -> Call[Readiness]:
    """Whether the server reaches its database with current migrations (503 Unavailable
    otherwise); no token needed."""
    return Call("GET", "/readyz", parsed(Readiness), root=True)


def create_webhook(
    *,
    org: str,
    url: str,
    events: Sequence[str],
    description: str | None = None,
    idempotency_key: str | None = None,
) -> Call[NewWebhook]:
    """Send the org's `events` to `url` (owner); the signing secret is shown once."""
    body = without_none({"url": url, "events": list(events), "description": description})
    return Call(
        "POST",
        f"/orgs/{segment(org)}/webhooks",
        parsed(NewWebhook),
        body=body,
        idempotency_key=idempotency_key,
    )


def webhooks(*, org: str, limit: int | None = None) -> ListCall[Webhook]:
    """The org's webhook endpoints (owner), without their secrets."""
    return ListCall(f"/orgs/{segment(org)}/webhooks", parsed(Webhook), list_query(limit))


def update_webhook(
    *,
    org: str,
    webhook: str,
    url: str | None = None,
    events: Sequence[str] | None = None,
    description: str | None = None,
    enabled: bool | None = None,
) -> Call[Webhook]:
    """Change any part of a webhook endpoint (owner)."""
    body: dict[str, Any] = without_none(
        {
            "url": url,
            "events": None if events is None else list(events),
            "description": description,
            "enabled": enabled,
        }
    )
    return Call(
        "PATCH", f"/orgs/{segment(org)}/webhooks/{segment(webhook)}", parsed(Webhook), body=body
    )


def delete_webhook(*, org: str, webhook: str) -> Call[None]:
    """Delete a webhook endpoint: nothing more is sent to it (owner)."""
    return Call("DELETE", f"/orgs/{segment(org)}/webhooks/{segment(webhook)}", nothing)


def deliveries(*, org: str, webhook: str, limit: int | None = None) -> ListCall[Delivery]:
    """A webhook endpoint's deliveries, newest first."""
    return ListCall(
        f"/orgs/{segment(org)}/webhooks/{segment(webhook)}/deliveries",
        parsed(Delivery),
        list_query(limit),
    )


def resend_delivery(
    *, org: str, webhook: str, delivery: str, idempotency_key: str | None = None
) -> Call[Delivery]:
    """Send a delivery's event again, with the same `webhook-id`: the new delivery, due now."""
    path = f"/orgs/{segment(org)}/webhooks/{segment(webhook)}/deliveries/{segment(delivery)}"
    return Call("POST", f"{path}/resend", parsed(Delivery), idempotency_key=idempotency_key)


def request_purchase(
    *,
    org: str,
    amount: Decimal | int,
    note: str | None = None,
    idempotency_key: str | None = None,
) -> Call[PurchaseRequest]:
    """Ask the operator for credits (owner)."""
    body = without_none({"amount": decimal_string(amount), "note": note})
    return Call(
        "POST",
        f"/orgs/{segment(org)}/purchase-requests",
        parsed(PurchaseRequest),
        body=body,
        idempotency_key=idempotency_key,
    )


def purchase_requests(
    *, org: str, status: PurchaseRequestStatus | None = None, limit: int | None = None
) -> ListCall[PurchaseRequest]:
    """The org's purchase requests (owner, operator), one status's with `status`."""
    query = list_query(limit, status=status)
    return ListCall(f"/orgs/{segment(org)}/purchase-requests", parsed(PurchaseRequest), query)


def approve_purchase_request(
    *,
    org: str,
    request: str,
    reference: str | None = None,
    idempotency_key: str | None = None,
) -> Call[PurchaseRequest]:
    """Approve a purchase request (operator): the pool is credited once."""
    return Call(
        "POST",
        f"/orgs/{segment(org)}/purchase-requests/{segment(request)}/approve",
        parsed(PurchaseRequest),
        body=without_none({"reference": reference}),
        idempotency_key=idempotency_key,
    )


def decline_purchase_request(
    *,
    org: str,
    request: str,
    reason: str | None = None,
    idempotency_key: str | None = None,
) -> Call[PurchaseRequest]:
    """Decline a purchase request (operator), with a reason for the owner."""
    return Call(
        "POST",
        f"/orgs/{segment(org)}/purchase-requests/{segment(request)}/decline",
        parsed(PurchaseRequest),
        body=without_none({"reason": reason}),
        idempotency_key=idempotency_key,
    )


def checkout(
    *, org: str, amount: Decimal | int, idempotency_key: str | None = None
) -> Call[Checkout]:
    """A hosted payment page to buy `amount` credits (owner); 409 CheckoutUnavailable when
    the server has no payment provider."""
    return Call(
        "POST",
        f"/orgs/{segment(org)}/checkout",
        parsed(Checkout),
        body={"amount": decimal_string(amount)},
        idempotency_key=idempotency_key,
    )
