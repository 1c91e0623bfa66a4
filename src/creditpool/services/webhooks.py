"""An org's webhook endpoints and their deliveries, as the owner manages them.

Each change of an org's endpoints rewrites `Org.webhook_events`, the event types some enabled,
live endpoint subscribes to, under the org's lock: services.events reads it to skip, without
a query, the events nobody wants. A deleted endpoint keeps its row and its deliveries (for the
record); what it was still owed is marked failed, and nothing more is sent to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import select, update

from creditpool.domain.errors import AlreadyExists, InvalidInput, NotFound
from creditpool.domain.text import check_clean_text, check_plain_text
from creditpool.services import webhook_secrets
from creditpool.services.events import EVENT_TYPES
from creditpool.services.lookups import load_org
from creditpool.services.transactions import run_write
from creditpool.storage.ids import new_id
from creditpool.storage.schema import (
    Org,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from creditpool.storage.unit_of_work import UnitOfWork

MAX_URL_LENGTH = 2000
MAX_DESCRIPTION_LENGTH = 500


@dataclass(frozen=True)
class EndpointView:
    """A webhook endpoint, never its secret."""

    id: str
    url: str
    events: list[str]
    description: str
    enabled: bool
    created_at: datetime


@dataclass(frozen=True)
class IssuedEndpoint:
    """A new endpoint and its signing secret, shown this once."""

    endpoint: EndpointView
    secret: str


@dataclass(frozen=True)
class DeliveryView:
    """One event owed to one endpoint, and how its sending goes."""

    id: str
    endpoint_id: str
    event_id: str
    event: str
    status: str
    attempts: int
    last_status_code: int | None
    next_attempt_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class AttemptView:
    """One try at sending a delivery."""

    id: str
    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


def check_url(url: str) -> str:
    """Return the url trimmed; InvalidInput unless it is an http(s) URL with a host."""
    url = url.strip()
    check_clean_text(url)
    check_plain_text(url, what="a webhook URL")
    if not url or len(url) > MAX_URL_LENGTH or " " in url:
        raise InvalidInput(f"a webhook URL is 1 to {MAX_URL_LENGTH} characters without spaces")
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError as error:
        raise InvalidInput(f"not a URL: {url!r}") from error
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or not port_ok:
        raise InvalidInput("a webhook URL is http:// or https:// with a host")
    return url


def check_events(events: Sequence[str]) -> list[str]:
    """Return the event names sorted and once each; InvalidInput for none or an unknown one."""
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown:
        raise InvalidInput(f"unknown event(s) {unknown}; known: {list(EVENT_TYPES)}")
    if not events:
        raise InvalidInput("subscribe to at least one event")
    return sorted(set(events))


def check_description(description: str) -> str:
    """Return the description trimmed; InvalidInput if too long or not clean text."""
    description = description.strip()
    check_clean_text(description)
    check_plain_text(description, what="a description")
    if len(description) > MAX_DESCRIPTION_LENGTH:
        raise InvalidInput(f"a description is at most {MAX_DESCRIPTION_LENGTH} characters")
    return description


def endpoint_view(row: WebhookEndpoint) -> EndpointView:
    """Return the view of an endpoint."""
    return EndpointView(
        row.id, row.url, list(row.events), row.description, row.enabled, row.created_at
    )


def refresh_subscriptions(uow: UnitOfWork, org: Org) -> None:
    """Rewrite the org's subscribed event types from its enabled, live endpoints."""
    rows = uow.session.scalars(
        select(WebhookEndpoint.events).where(
            WebhookEndpoint.org_id == org.id,
            WebhookEndpoint.enabled.is_(True),
            WebhookEndpoint.deleted_at.is_(None),
        )
    )
    wanted = {event for events in rows for event in events}
    org.webhook_events = " ".join(sorted(wanted))


def create_endpoint(
    uow: UnitOfWork,
    org_id: str,
    *,
    url: str,
    events: Sequence[str],
    description: str = "",
    actor: str,
    idempotency_key: str | None = None,
) -> IssuedEndpoint:
    """Add an endpoint to the org, sent the events named; its secret is returned this once."""
    url, chosen, description = check_url(url), check_events(events), check_description(description)

    def apply() -> IssuedEndpoint:
        org = load_org(uow, org_id, lock=True)
        secret = webhook_secrets.new_endpoint_secret()
        row = WebhookEndpoint(
            org_id=org_id,
            id=new_id("whe"),
            url=url,
            events=chosen,
            description=description,
            enabled=True,
            secret_encrypted=webhook_secrets.encrypt(uow.session, secret),
            created_at=uow.now,
        )
        uow.session.add(row)
        uow.session.flush()
        refresh_subscriptions(uow, org)
        return IssuedEndpoint(endpoint_view(row), secret)

    return run_write(
        uow,
        apply,
        org_id=org_id,
        actor=actor,
        key=idempotency_key,
        operation="create_webhook_endpoint",
        arguments={"url": url, "events": chosen, "description": description},
        result_type=IssuedEndpoint,
        replay_as=AlreadyExists(
            "this idempotency key already made an endpoint; its secret was shown once"
        ),
    )


def _live_endpoint(uow: UnitOfWork, org_id: str, endpoint_id: str) -> WebhookEndpoint:
    row = uow.session.get(WebhookEndpoint, (org_id, endpoint_id))
    if row is None or row.deleted_at is not None:
        raise NotFound(f"no webhook endpoint {endpoint_id} in this org")
    return row


def list_endpoints(
    uow: UnitOfWork, org_id: str, *, after: str | None = None, limit: int | None = None
) -> list[EndpointView]:
    """Return the org's live endpoints, oldest first; a page with `after` and `limit`."""
    with uow:
        load_org(uow, org_id)
        query = (
            select(WebhookEndpoint)
            .where(WebhookEndpoint.org_id == org_id, WebhookEndpoint.deleted_at.is_(None))
            .order_by(WebhookEndpoint.id)
        )
        if after is not None:
            query = query.where(WebhookEndpoint.id > after)
        if limit is not None:
            query = query.limit(limit)
        return [endpoint_view(row) for row in uow.session.scalars(query)]


def update_endpoint(
    uow: UnitOfWork,
    org_id: str,
    endpoint_id: str,
    *,
    url: str | None = None,
    events: Sequence[str] | None = None,
    description: str | None = None,
    enabled: bool | None = None,
) -> EndpointView:
    """Change any of an endpoint's URL, events, description and whether it is sent anything."""
    url = None if url is None else check_url(url)
    chosen = None if events is None else check_events(events)
    description = None if description is None else check_description(description)

    def apply() -> EndpointView:
        org = load_org(uow, org_id, lock=True)
        row = _live_endpoint(uow, org_id, endpoint_id)
        if url is not None:
            row.url = url
        if chosen is not None:
            row.events = chosen
        if description is not None:
            row.description = description
        if enabled is not None:
            row.enabled = enabled
        uow.session.flush()
        refresh_subscriptions(uow, org)
        return endpoint_view(row)

    return run_write(uow, apply)


def delete_endpoint(uow: UnitOfWork, org_id: str, endpoint_id: str) -> None:
    """Delete an endpoint: nothing more is sent to it, what it was owed is marked failed."""

    def apply() -> None:
        org = load_org(uow, org_id, lock=True)
        row = _live_endpoint(uow, org_id, endpoint_id)
        row.deleted_at = uow.now
        uow.session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.org_id == org_id,
                WebhookDelivery.endpoint_id == endpoint_id,
                WebhookDelivery.status == "pending",
            )
            .values(status="failed", next_attempt_at=None)
        )
        uow.session.flush()
        refresh_subscriptions(uow, org)

    run_write(uow, apply)


def _delivery_view(row: WebhookDelivery, event_type: str) -> DeliveryView:
    return DeliveryView(
        id=row.id,
        endpoint_id=row.endpoint_id,
        event_id=row.event_id,
        event=event_type,
        status=row.status,
        attempts=row.attempts,
        last_status_code=row.last_status_code,
        next_attempt_at=row.next_attempt_at,
        created_at=row.created_at,
    )


def list_deliveries(
    uow: UnitOfWork,
    org_id: str,
    endpoint_id: str,
    *,
    before: str | None = None,
    limit: int = 50,
) -> list[DeliveryView]:
    """Return an endpoint's deliveries, newest first; the next page with `before` (the last
    id of the previous one)."""
    with uow:
        load_org(uow, org_id)
        _live_endpoint(uow, org_id, endpoint_id)
        query = (
            select(WebhookDelivery, WebhookEvent.type)
            .join(
                WebhookEvent,
                (WebhookEvent.org_id == WebhookDelivery.org_id)
                & (WebhookEvent.id == WebhookDelivery.event_id),
            )
            .where(
                WebhookDelivery.org_id == org_id,
                WebhookDelivery.endpoint_id == endpoint_id,
            )
            .order_by(WebhookDelivery.id.desc())
            .limit(limit)
        )
        if before is not None:
            query = query.where(WebhookDelivery.id < before)
        return [_delivery_view(row, event) for row, event in uow.session.execute(query).tuples()]


def list_attempts(
    uow: UnitOfWork, org_id: str, delivery_ids: Sequence[str]
) -> dict[str, list[AttemptView]]:
    """Return the attempts of some deliveries of the org, oldest first, by delivery."""
    found: dict[str, list[AttemptView]] = {delivery_id: [] for delivery_id in delivery_ids}
    if not delivery_ids:
        return found
    with uow:
        rows = uow.session.scalars(
            select(WebhookAttempt)
            .where(
                WebhookAttempt.org_id == org_id,
                WebhookAttempt.delivery_id.in_(list(delivery_ids)),
            )
            .order_by(WebhookAttempt.id)
        )
        for row in rows:
            found[row.delivery_id].append(
                AttemptView(row.id, row.attempted_at, row.status_code, row.error, row.duration_ms)
            )
    return found


def resend_delivery(
    uow: UnitOfWork,
    org_id: str,
    endpoint_id: str,
    delivery_id: str,
    *,
    actor: str,
    idempotency_key: str | None = None,
) -> DeliveryView:
    """Send a delivery's event to its endpoint again, as a new delivery with the same event
    (so the same `webhook-id`), due now."""

    def apply() -> DeliveryView:
        load_org(uow, org_id)
        _live_endpoint(uow, org_id, endpoint_id)
        original = uow.session.get(WebhookDelivery, (org_id, delivery_id))
        if original is None or original.endpoint_id != endpoint_id:
            raise NotFound(f"no delivery {delivery_id} for this endpoint")
        row = WebhookDelivery(
            org_id=org_id,
            id=new_id("dlv"),
            endpoint_id=endpoint_id,
            event_id=original.event_id,
            status="pending",
            attempts=0,
            last_status_code=None,
            next_attempt_at=uow.now,
            created_at=uow.now,
        )
        uow.session.add(row)
        uow.session.flush()
        event = uow.session.get(WebhookEvent, (org_id, original.event_id))
        return _delivery_view(row, event.type if event is not None else "")

    return run_write(
        uow,
        apply,
        org_id=org_id,
        actor=actor,
        key=idempotency_key,
        operation="resend_webhook_delivery",
        arguments={"endpoint": endpoint_id, "delivery": delivery_id},
        result_type=DeliveryView,
    )
