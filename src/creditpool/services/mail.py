"""The mail outbox: e-mails are written in the same transaction as what they announce, and
sent afterwards, so a failing mail server never loses an invitation. Failed sends are retried
with a growing delay, up to MAX_ATTEMPTS.

A secret link a message carries (an invitation, a password reset) is not kept readable in the
outbox longer than needed: the body holds the placeholder LINK where the link goes, the link
waits in `secret_link`, and the two meet only in the text handed to the mail server. Once the
message is sent, or given up on, `secret_link` is cleared, so the database keeps no usable link.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import select

from creditpool.services.transactions import run_write
from creditpool.storage.ids import new_id
from creditpool.storage.schema import MailMessage
from creditpool.storage.unit_of_work import UnitOfWork

MAX_ATTEMPTS = 8
# Wait 1, 2, 4, ... minutes between attempts, at most 2 hours.
FIRST_RETRY = timedelta(minutes=1)
LONGEST_RETRY = timedelta(hours=2)
# Where a message's secret link goes in its body. Braces and a name nobody writes by chance:
# ordinary text does not hold it (and if a name someone typed did, the worst is the recipient
# seeing their own link twice).
LINK = "{{creditpool:secret-link}}"


@dataclass(frozen=True)
class OutgoingMail:
    """One message to send."""

    id: str
    to_address: str
    subject: str
    body: str


MailSender = Callable[[OutgoingMail], None]


def enqueue(
    uow: UnitOfWork,
    *,
    org_id: str,
    to_address: str,
    subject: str,
    body: str,
    secret_link: str | None = None,
) -> MailMessage:
    """Put a message in the outbox, inside the caller's open transaction.

    `org_id` is "" for mail about a person's account. A `secret_link` goes where the body
    holds LINK, only in the text sent; it is forgotten once the message is sent or given up.
    """
    message = MailMessage(
        org_id=org_id,
        id=new_id("msg"),
        to_address=to_address,
        subject=subject,
        body=body,
        secret_link=secret_link,
        attempts=0,
        next_attempt_at=uow.now,
        created_at=uow.now,
    )
    uow.session.add(message)
    return message


def text_to_send(body: str, secret_link: str | None) -> str:
    """Return the body with its secret link in place of LINK (once it is gone, LINK stays)."""
    return body if secret_link is None else body.replace(LINK, secret_link)


def retry_delay(attempts: int) -> timedelta:
    """Return how long to wait after the `attempts`-th failed attempt."""
    delay: timedelta = FIRST_RETRY * 2 ** max(attempts - 1, 0)
    return min(delay, LONGEST_RETRY)


@dataclass(frozen=True)
class DeliveryReport:
    """What one pass over the outbox did."""

    sent: int
    failed: int


def deliver_due(uow: UnitOfWork, send: MailSender, *, limit: int = 100) -> DeliveryReport:
    """Send the messages that are due, one transaction each; record failures for a retry."""
    with uow:
        due = [
            (message.org_id, message.id)
            for message in uow.session.scalars(
                select(MailMessage)
                .where(
                    MailMessage.sent_at.is_(None),
                    MailMessage.attempts < MAX_ATTEMPTS,
                    MailMessage.next_attempt_at <= uow.now,
                )
                .order_by(MailMessage.next_attempt_at)
                .limit(limit)
            )
        ]
    outcomes = [run_write(uow, partial(_deliver, uow, key, send)) for key in due]
    return DeliveryReport(outcomes.count(True), outcomes.count(False))


def _deliver(uow: UnitOfWork, key: tuple[str, str], send: MailSender) -> bool | None:
    """Send one message, holding its row; True if the server took it, False if it failed, None
    if another worker sent it meanwhile."""
    message = uow.session.get(MailMessage, key, with_for_update={"key_share": True})
    if message is None or message.sent_at is not None:
        return None
    outgoing = OutgoingMail(
        message.id,
        message.to_address,
        message.subject,
        text_to_send(message.body, message.secret_link),
    )
    message.attempts += 1
    try:
        send(outgoing)
    except Exception as error:  # any failure of the mail server is retried later
        message.last_error = f"{type(error).__name__}: {error}"[:500]
        message.next_attempt_at = uow.now + retry_delay(message.attempts)
        if message.attempts >= MAX_ATTEMPTS:
            message.secret_link = None  # given up: nothing will need the link again
        return False
    message.sent_at = uow.now
    message.secret_link = None  # delivered: the mailbox has it, we need not
    return True


def outbox_for(uow: UnitOfWork, to_address: str) -> list[tuple[str, str, datetime | None]]:
    """Return (subject, text, sent_at) of the messages to one address, oldest first.

    The text is what is (or was) sent, with the secret link in place while the outbox still
    holds it.
    """
    with uow:
        rows = uow.session.execute(
            select(
                MailMessage.subject,
                MailMessage.body,
                MailMessage.secret_link,
                MailMessage.sent_at,
            )
            .where(MailMessage.to_address == to_address)
            .order_by(MailMessage.id)
        ).tuples()
        return [
            (subject, text_to_send(body, secret_link), sent_at)
            for subject, body, secret_link, sent_at in rows
        ]
