"""Webhook events: written to the outbox in the transaction of the change that causes them.

`emit` is called by the service that makes a change, inside its unit of work, before the
commit: the event and one delivery per endpoint subscribed to it are rows of the same
transaction, so a change that rolls back sends nothing and one that commits is delivered
(by the worker, services/webhook_delivery.py) even if the process dies right after.

The hot path stays cheap: the org row, which every write reads already, carries the event
types some live endpoint subscribes to (`Org.webhook_events`, kept by services/webhooks.py).
A change whose event nobody wants costs no query at all, and its data is never built: pass
`data` as a function to have it built only when someone is subscribed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import insert, select

from creditpool.storage.ids import new_id
from creditpool.storage.schema import WebhookDelivery, WebhookEndpoint, WebhookEvent, table_of
from creditpool.storage.unit_of_work import UnitOfWork

CREDITS_LOW = "credits.low"
CREDITS_DEPLETED = "credits.depleted"
MEMBER_JOINED = "member.joined"
MEMBER_REMOVED = "member.removed"
ALLOCATION_CREATED = "allocation.created"
REVOCATION_CREATED = "revocation.created"
USAGE_RECORDED = "usage.recorded"
ORG_PAUSED = "org.paused"
ORG_RESUMED = "org.resumed"
PURCHASE_COMPLETED = "purchase.completed"
CREDITS_EXPIRING = "credits.expiring"
CREDITS_EXPIRED = "credits.expired"

EVENT_TYPES: tuple[str, ...] = (
    CREDITS_LOW,
    CREDITS_DEPLETED,
    MEMBER_JOINED,
    MEMBER_REMOVED,
    ALLOCATION_CREATED,
    REVOCATION_CREATED,
    USAGE_RECORDED,
    ORG_PAUSED,
    ORG_RESUMED,
    PURCHASE_COMPLETED,
    CREDITS_EXPIRING,
    CREDITS_EXPIRED,
)

EventData = Mapping[str, Any] | Callable[[], Mapping[str, Any]]

_events, _deliveries = table_of(WebhookEvent), table_of(WebhookDelivery)
_endpoints = table_of(WebhookEndpoint)
_INSERT_EVENT = insert(_events)
_INSERT_DELIVERY = insert(_deliveries)


class EmittingOrg(Protocol):
    """What emitting needs of an org: an ORM row or a Core row with these columns."""

    @property
    def id(self) -> str: ...

    @property
    def webhook_events(self) -> str: ...


@dataclass(frozen=True)
class OrgRef:
    """An org as emitting needs it, for paths that read the org's columns, not its row."""

    id: str
    webhook_events: str


def subscribed(org: EmittingOrg, event_type: str) -> bool:
    """Whether some live endpoint of the org wants `event_type` (no query: the org row says)."""
    return event_type in org.webhook_events.split()


def subscribers(uow: UnitOfWork, org_id: str, event_type: str) -> list[str]:
    """Return the ids of the org's enabled, live endpoints subscribed to `event_type`."""
    rows = uow.session.execute(
        select(_endpoints.c.id, _endpoints.c.events).where(
            _endpoints.c.org_id == org_id,
            _endpoints.c.enabled.is_(True),
            _endpoints.c.deleted_at.is_(None),
        )
    ).tuples()
    return [endpoint_id for endpoint_id, events in rows if event_type in events]


def emit(uow: UnitOfWork, org: EmittingOrg, event_type: str, data: EventData) -> str | None:
    """Write an event of the org to the outbox, owed to each endpoint subscribed to it, in the
    open transaction; return its id, or None when nobody is subscribed (nothing is written)."""
    ids = emit_many(uow, org, event_type, [data])
    return ids[0] if ids else None


def emit_many(
    uow: UnitOfWork, org: EmittingOrg, event_type: str, datas: Iterable[EventData]
) -> list[str]:
    """Write one event of `event_type` per data (a batch's charges, say), reading the
    subscribed endpoints once; return their ids (none when nobody is subscribed)."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    if not subscribed(org, event_type):
        return []
    endpoint_ids = subscribers(uow, org.id, event_type)
    if not endpoint_ids:
        return []
    now = uow.now
    events: list[dict[str, Any]] = []
    deliveries: list[dict[str, Any]] = []
    for data in datas:
        event_id = new_id("evt")
        payload = data() if callable(data) else data
        body = {
            "id": event_id,
            "type": event_type,
            "created_at": rfc3339(now),
            "org_id": org.id,
            "data": payload,
        }
        events.append(
            {
                "org_id": org.id,
                "id": event_id,
                "type": event_type,
                "body": json.dumps(body, separators=(",", ":"), ensure_ascii=False),
                "created_at": now,
            }
        )
        deliveries.extend(
            {
                "org_id": org.id,
                "id": new_id("dlv"),
                "endpoint_id": endpoint_id,
                "event_id": event_id,
                "status": "pending",
                "attempts": 0,
                "last_status_code": None,
                "next_attempt_at": now,
                "created_at": now,
            }
            for endpoint_id in endpoint_ids
        )
    if not events:
        return []
    connection = uow.session.connection()
    connection.execute(_INSERT_EVENT, events)
    connection.execute(_INSERT_DELIVERY, deliveries)
    return [event["id"] for event in events]


def rfc3339(instant: datetime) -> str:
    """Return an instant as the API writes it: UTC, with `Z` (2026-11-22T10:00:00Z)."""
    text = instant.astimezone(UTC).isoformat()
    return text.removesuffix("+00:00") + "Z"
