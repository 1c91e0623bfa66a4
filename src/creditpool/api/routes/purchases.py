"""Buying credits: an owner's purchase requests, which an operator approves or declines;
Stripe Checkout for owners, and the webhook through which Stripe reports a payment."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Header, Query, Request, status
from pydantic import BaseModel, Field

from creditpool.api import document_rules
from creditpool.api.deps import Allow, ConfigDep, IdempotencyKey, UowDep, off_the_loop
from creditpool.api.pages import Cursor, Limit, page
from creditpool.api.routing import api_router
from creditpool.api.schemas import Amount, AmountIn, Page, Reference, RequestBody
from creditpool.domain.amounts import format_credits
from creditpool.domain.purchases import PurchaseRequestStatus
from creditpool.domain.roles import Permission
from creditpool.services import checkout, purchase_requests
from creditpool.services.auth import Grant
from creditpool.services.purchase_requests import PurchaseRequestView

router = api_router("purchases")

Govern = Annotated[Grant, Depends(Allow(Permission.GOVERN))]
Operate = Annotated[Grant, Depends(Allow(Permission.OPERATE))]
Text = Annotated[str, Field(max_length=500, json_schema_extra=document_rules.optional_name)]

_PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


class PurchaseRequestIn(RequestBody):
    """Credits the owner asks the operator for."""

    amount: AmountIn
    note: Text | None = None


class Approval(RequestBody):
    """The reference the purchase carries (an invoice number, say)."""

    reference: Reference | None = None


class Decline(RequestBody):
    """Why the request is declined; the owner reads it."""

    reason: Text | None = None


class PurchaseRequest(BaseModel):
    """A request for credits and, once decided, its outcome."""

    id: str
    amount: Amount
    note: str | None
    status: PurchaseRequestStatus
    reason: str | None
    created_at: datetime
    decided_at: datetime | None
    transfer_id: str | None = Field(description="The purchase that credited the pool.")

    @classmethod
    def of(cls, view: PurchaseRequestView) -> PurchaseRequest:
        """Return the body for a request."""
        return cls(
            id=view.id,
            amount=format_credits(view.amount),
            note=view.note,
            status=view.status,
            reason=view.reason,
            created_at=view.created_at,
            decided_at=view.decided_at,
            transfer_id=view.transfer_id,
        )


class CheckoutIn(RequestBody):
    """Whole credits to buy by card."""

    amount: AmountIn


class Checkout(BaseModel):
    """The hosted payment page to send the owner to."""

    url: str


class Received(BaseModel):
    """Stripe's event was verified and handled (a replay changes nothing)."""

    received: bool = True


@router.post(
    "/orgs/{org}/purchase-requests",
    status_code=status.HTTP_201_CREATED,
    summary="Ask for credits",
)
def request_credits(
    org: str,
    body: PurchaseRequestIn,
    uow: UowDep,
    grant: Govern,
    idempotency_key: IdempotencyKey = None,
) -> PurchaseRequest:
    """The owner asks the operator for credits; the request waits, pending, for a decision."""
    return PurchaseRequest.of(
        purchase_requests.request_credits(
            uow,
            org,
            body.amount,
            note=body.note,
            actor=grant.actor,
            idempotency_key=idempotency_key,
        )
    )


@router.get("/orgs/{org}/purchase-requests", summary="List purchase requests")
def list_purchase_requests(
    org: str,
    uow: UowDep,
    _: Govern,
    status_: Annotated[PurchaseRequestStatus | None, Query(alias="status")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[PurchaseRequest]:
    """The org's requests, newest first, optionally of one status."""
    views = purchase_requests.list_purchase_requests(
        uow, org, status=status_, before=cursor, limit=limit + 1
    )
    return page([PurchaseRequest.of(view) for view in views], limit)


@router.post(
    "/orgs/{org}/purchase-requests/{purchase_request}/approve",
    summary="Approve a purchase request",
)
def approve(
    org: str,
    purchase_request: str,
    uow: UowDep,
    config: ConfigDep,
    grant: Operate,
    body: Approval | None = None,
    idempotency_key: IdempotencyKey = None,
) -> PurchaseRequest:
    """One purchase of the requested amount credits the pool, once whatever the retries (an
    approved request answers as it stands); the owner is e-mailed. A declined request: 409
    `request_decided`."""
    return PurchaseRequest.of(
        purchase_requests.approve_request(
            uow,
            org,
            purchase_request,
            reference=body.reference if body else None,
            actor=grant.actor,
            public_url=config.public_url,
            idempotency_key=idempotency_key,
        )
    )


@router.post(
    "/orgs/{org}/purchase-requests/{purchase_request}/decline",
    summary="Decline a purchase request",
)
def decline(
    org: str,
    purchase_request: str,
    uow: UowDep,
    config: ConfigDep,
    grant: Operate,
    body: Decline | None = None,
    idempotency_key: IdempotencyKey = None,
) -> PurchaseRequest:
    """The request is declined, with a reason the owner is e-mailed. An approved request: 409
    `request_decided`."""
    return PurchaseRequest.of(
        purchase_requests.decline_request(
            uow,
            org,
            purchase_request,
            reason=body.reason if body else None,
            actor=grant.actor,
            public_url=config.public_url,
            idempotency_key=idempotency_key,
        )
    )


@router.post(
    "/orgs/{org}/checkout", status_code=status.HTTP_201_CREATED, summary="Buy credits by card"
)
def start_checkout(
    org: str,
    body: CheckoutIn,
    uow: UowDep,
    config: ConfigDep,
    grant: Govern,
    idempotency_key: IdempotencyKey = None,
) -> Checkout:
    """A Stripe Checkout page selling whole credits at the configured price; the pool is
    credited when Stripe reports the payment. 409 `checkout_unavailable` when Stripe is not
    configured."""
    back = f"{config.public_url}/orgs/{org}/checkout"
    opened = checkout.start_checkout(
        uow,
        org,
        body.amount,
        settings=checkout.stripe_settings(config),
        success_url=f"{back}/done",
        cancel_url=f"{back}/cancelled",
        actor=grant.actor,
        idempotency_key=idempotency_key,
    )
    return Checkout(url=opened.url)


@router.post(
    "/webhooks/stripe",
    summary="Stripe's events",
    responses={
        400: {"description": "The Stripe-Signature does not sign the body", "content": _PROBLEM}
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def stripe_webhook(
    request: Request,
    uow: UowDep,
    config: ConfigDep,
    stripe_signature: Annotated[
        str | None,
        Header(alias="Stripe-Signature", max_length=2000, description="Stripe's signature."),
    ] = None,
) -> Received:
    """Stripe reports a Checkout payment: verified by its signature (400 `invalid_signature`
    and nothing changes otherwise), a completed session credits the pool exactly once."""
    payload = await request.body()
    settings = checkout.stripe_settings(config)
    await off_the_loop(
        lambda: checkout.receive_stripe_event(uow, payload, stripe_signature, settings=settings)
    )
    return Received()
