"""Webhook endpoints and their deliveries (the org's owner only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Response, status

from creditpool.api.deps import Allow, IdempotencyKey, UowDep
from creditpool.api.pages import Cursor, Limit, page
from creditpool.api.routing import api_router
from creditpool.api.schemas import Page
from creditpool.api.webhook_schemas import (
    NewWebhook,
    Webhook,
    WebhookChange,
    WebhookDelivery,
    WebhookWithSecret,
)
from creditpool.domain.roles import Permission
from creditpool.services import webhooks
from creditpool.services.auth import Grant

router = api_router("webhooks")

Govern = Annotated[Grant, Depends(Allow(Permission.GOVERN))]


@router.post(
    "/orgs/{org}/webhooks", status_code=status.HTTP_201_CREATED, summary="Add a webhook endpoint"
)
def create_webhook(
    org: str,
    body: NewWebhook,
    uow: UowDep,
    grant: Govern,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> WebhookWithSecret:
    """Send the named events to `url`, signed with the secret returned this once."""
    response.headers["Cache-Control"] = "no-store"  # a secret: no cache may keep it
    issued = webhooks.create_endpoint(
        uow,
        org,
        url=body.url,
        events=list(body.events),
        description=body.description,
        actor=grant.actor,
        idempotency_key=idempotency_key,
    )
    return WebhookWithSecret.issued(issued)


@router.get("/orgs/{org}/webhooks", summary="List webhook endpoints")
def list_webhooks(
    org: str, uow: UowDep, _: Govern, limit: Limit = 50, cursor: Cursor = None
) -> Page[Webhook]:
    """The org's endpoints, oldest first, never their secrets."""
    views = webhooks.list_endpoints(uow, org, after=cursor, limit=limit + 1)
    return page([Webhook.of(view) for view in views], limit)


@router.patch("/orgs/{org}/webhooks/{webhook}", summary="Change a webhook endpoint")
def change_webhook(org: str, webhook: str, body: WebhookChange, uow: UowDep, _: Govern) -> Webhook:
    """Change any of its URL, events, description, and whether it is sent anything."""
    view = webhooks.update_endpoint(
        uow,
        org,
        webhook,
        url=body.url,
        events=None if body.events is None else list(body.events),
        description=body.description,
        enabled=body.enabled,
    )
    return Webhook.of(view)


@router.delete(
    "/orgs/{org}/webhooks/{webhook}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a webhook endpoint",
)
def delete_webhook(org: str, webhook: str, uow: UowDep, _: Govern) -> None:
    """Nothing more is sent to it; what it was still owed is marked failed."""
    webhooks.delete_endpoint(uow, org, webhook)


@router.get("/orgs/{org}/webhooks/{webhook}/deliveries", summary="List an endpoint's deliveries")
def list_deliveries(
    org: str, webhook: str, uow: UowDep, _: Govern, limit: Limit = 50, cursor: Cursor = None
) -> Page[WebhookDelivery]:
    """The events owed to the endpoint, newest first, with how their sending goes."""
    views = webhooks.list_deliveries(uow, org, webhook, before=cursor, limit=limit + 1)
    return page([WebhookDelivery.of(view) for view in views], limit)


@router.post(
    "/orgs/{org}/webhooks/{webhook}/deliveries/{delivery}/resend",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send a delivery again",
)
def resend_delivery(
    org: str,
    webhook: str,
    delivery: str,
    uow: UowDep,
    grant: Govern,
    idempotency_key: IdempotencyKey = None,
) -> WebhookDelivery:
    """The event goes out again, with the same `webhook-id`, as a new delivery due now."""
    view = webhooks.resend_delivery(
        uow, org, webhook, delivery, actor=grant.actor, idempotency_key=idempotency_key
    )
    return WebhookDelivery.of(view)
