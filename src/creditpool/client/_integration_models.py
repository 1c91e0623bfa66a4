"""What the integration calls of version 1.1 answer: webhooks, deliveries, purchase requests,
checkout and readiness, as the client's own frozen types."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import AwareDatetime

from creditpool.client._models import Model

DeliveryStatus = Literal["pending", "succeeded", "failed"]
PurchaseRequestStatus = Literal["pending", "approved", "declined"]


class Webhook(Model):
    """An endpoint the org's events are sent to (its secret is never listed)."""

    id: str
    url: str
    events: list[str]
    description: str | None
    enabled: bool
    created_at: AwareDatetime


class NewWebhook(Webhook):
    """A new endpoint: `secret` (`whsec_…`) verifies its signatures and is shown this once."""

    secret: str


class Delivery(Model):
    """One event's delivery to one endpoint, with its attempts so far."""

    id: str
    event_id: str
    event: str
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    next_attempt_at: AwareDatetime | None
    created_at: AwareDatetime


class PurchaseRequest(Model):
    """An owner's request for credits, which an operator approves or declines."""

    id: str
    amount: Decimal
    note: str | None
    status: PurchaseRequestStatus
    reason: str | None = None  # why it was declined
    created_at: AwareDatetime
    decided_at: AwareDatetime | None
    transfer_id: str | None


class Checkout(Model):
    """A hosted payment page to send the owner to."""

    url: str


class Readiness(Model):
    """The server can reach its database and its migrations are current."""

    database: str
    migrations: str
