"""Request and response bodies of the webhook endpoints' calls (owner only)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StrictBool

from creditpool.api.schemas import RequestBody
from creditpool.services.events import EVENT_TYPES
from creditpool.services.webhooks import (
    MAX_DESCRIPTION_LENGTH,
    MAX_URL_LENGTH,
    DeliveryView,
    EndpointView,
    IssuedEndpoint,
)

EventName = Literal[
    "credits.low",
    "credits.depleted",
    "member.joined",
    "member.removed",
    "allocation.created",
    "revocation.created",
    "usage.recorded",
    "org.paused",
    "org.resumed",
    "purchase.completed",
    "credits.expiring",
    "credits.expired",
]
assert set(EventName.__args__) == set(EVENT_TYPES)  # type: ignore[attr-defined]

# A port from 1 to 65535, leading zeros allowed, as the server reads one (check_url).
PORT = r"0*(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
Url = Annotated[
    str,
    Field(
        min_length=8,
        max_length=MAX_URL_LENGTH,
        pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9._~-]+(:" + PORT + r")?(/[!-~]*)?$",
        description="Where events are POSTed: an http:// or https:// URL.",
        examples=["https://vendor.example/hooks/creditpool"],
    ),
]
Events = Annotated[
    list[EventName],
    Field(min_length=1, max_length=len(EVENT_TYPES) * 2, description="The events to send."),
]
Description = Annotated[
    str, Field(max_length=MAX_DESCRIPTION_LENGTH, pattern=r"^[^\x00-\x1f\x7f-\x9f]*$")
]


class NewWebhook(RequestBody):
    """An endpoint to send the org's events to."""

    url: Url
    events: Events
    description: Description = ""


class WebhookChange(RequestBody):
    """Any of an endpoint's URL, events, description, and whether it is sent anything."""

    url: Url | None = None
    events: Events | None = None
    description: Description | None = None
    enabled: StrictBool | None = None


class Webhook(BaseModel):
    """A webhook endpoint, never its secret."""

    id: str
    url: str
    events: list[str]
    description: str
    enabled: bool
    created_at: datetime

    @classmethod
    def of(cls, view: EndpointView) -> Webhook:
        """Return the body for an endpoint."""
        return cls(
            id=view.id,
            url=view.url,
            events=view.events,
            description=view.description,
            enabled=view.enabled,
            created_at=view.created_at,
        )


class WebhookWithSecret(Webhook):
    """A new endpoint with its signing secret (`whsec_…`), shown this once."""

    secret: str

    @classmethod
    def issued(cls, issued: IssuedEndpoint) -> WebhookWithSecret:
        """Return the body for a new endpoint."""
        return cls(**Webhook.of(issued.endpoint).model_dump(), secret=issued.secret)


class WebhookDelivery(BaseModel):
    """One event owed to an endpoint, and how its sending goes."""

    id: str
    event_id: str
    event: str
    status: Literal["pending", "succeeded", "failed"]
    attempts: int
    last_status_code: int | None
    next_attempt_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, view: DeliveryView) -> WebhookDelivery:
        """Return the body for a delivery."""
        return cls(
            id=view.id,
            event_id=view.event_id,
            event=view.event,
            status=view.status,
            attempts=view.attempts,
            last_status_code=view.last_status_code,
            next_attempt_at=view.next_attempt_at,
            created_at=view.created_at,
        )
