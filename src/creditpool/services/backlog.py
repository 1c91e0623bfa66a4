"""What waits to be sent, read for /metrics: the webhook deliveries by status and those due
now, and the mail not yet sent. Read from the database so that every process reports the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from creditpool.metrics import DatabaseGauge
from creditpool.storage.schema import MailMessage, WebhookDelivery, WebhookEndpoint

Samples = Iterable[tuple[tuple[str, ...], float]]
STATUSES = ("pending", "succeeded", "failed")


def _deliveries(session: Session, now: datetime) -> Samples:
    by_status = select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)
    counted = {status: count for status, count in session.execute(by_status)}
    return [((status,), counted.get(status, 0)) for status in STATUSES]


def _due(session: Session, now: datetime) -> Samples:
    # As the worker claims them: an endpoint disabled or deleted is sent nothing meanwhile.
    due = session.scalar(
        select(func.count())
        .select_from(WebhookDelivery)
        .join(
            WebhookEndpoint,
            (WebhookEndpoint.org_id == WebhookDelivery.org_id)
            & (WebhookEndpoint.id == WebhookDelivery.endpoint_id),
        )
        .where(
            WebhookDelivery.status == "pending",
            WebhookDelivery.next_attempt_at <= now,
            WebhookEndpoint.enabled.is_(True),
            WebhookEndpoint.deleted_at.is_(None),
        )
    )
    return [((), due or 0)]


def _unsent_mail(session: Session, now: datetime) -> Samples:
    unsent = session.scalar(select(func.count()).where(MailMessage.sent_at.is_(None)))
    return [((), unsent or 0)]


GAUGES = (
    DatabaseGauge(
        "creditpool_webhook_deliveries",
        "Webhook deliveries by status: pending ones are the outbox's backlog, failed ones "
        "gave up after a day of retries.",
        ("status",),
        _deliveries,
    ),
    DatabaseGauge(
        "creditpool_webhook_deliveries_due",
        "Pending webhook deliveries to live endpoints whose next attempt is due now (a worker "
        "should take them).",
        (),
        _due,
    ),
    DatabaseGauge(
        "creditpool_mail_unsent",
        "E-mails in the outbox not yet accepted by the SMTP server.",
        (),
        _unsent_mail,
    ),
)
