"""Secret links in mail are not kept readable in the database once they have gone out.

An invitation's token travels in the e-mail only: the outbox holds the link apart from the
body while the message waits, and forgets it once the message is sent or given up on. The
invitation itself keeps only a hash. These tests read every row of every table after the
worker's pass, on both engines, through a real SMTP server.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from creditpool.config import Config
from creditpool.services import mail
from creditpool.storage.schema import Base, MailMessage
from creditpool.storage.unit_of_work import UnitOfWork
from creditpool.worker import run_once
from tests.api.support import OPERATOR_KEY, PASSWORD, PUBLIC_URL, Api
from tests.support.clock import FakeClock
from tests.support.smtp import SmtpServer, smtp_server

INVITEE = "ines.invited@example.test"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def uow(app: FastAPI) -> UnitOfWork:
    """A unit of work on the app's (rolled-back) database."""
    return UnitOfWork(app.state.session_factory, app.state.clock)


def invite(api: Api, address: str) -> str:
    """Open an org and invite `address` to it by e-mail; return the org's id."""
    owner, token = api.sign_up("Owner")
    created = api.call(
        "POST",
        "/orgs",
        token=OPERATOR_KEY,
        json={"name": "Mail class", "owner_email": owner["email"]},
    )
    assert created.status_code == 201, created.text
    org_id = str(created.json()["id"])
    invited = api.call(
        "POST", f"/orgs/{org_id}/invitations", token=token, json={"emails": [address]}
    )
    assert invited.status_code == 201, invited.text
    return org_id


def stored_text(uow: UnitOfWork) -> str:
    """Every value of every row of every table, as text, one line each."""
    lines = []
    with uow:
        for table in Base.metadata.sorted_tables:
            for row in uow.session.execute(select(table)):
                lines.extend(f"{table.name}: {value}" for value in row if value is not None)
    return "\n".join(lines)


def outbox_row(uow: UnitOfWork, address: str) -> tuple[str, str | None, int, bool]:
    """Return (body, secret_link, attempts, sent) of the one message to `address`."""
    with uow:
        [message] = uow.session.scalars(
            select(MailMessage).where(MailMessage.to_address == address)
        )
        return message.body, message.secret_link, message.attempts, message.sent_at is not None


def test_a_sent_invitation_leaves_no_usable_link_in_the_database(
    api: Api, app: FastAPI, uow: UnitOfWork, smtp: SmtpServer
) -> None:
    org_id = invite(api, INVITEE)

    # While it waits, the link is held apart from the body, which only marks its place.
    body, link, _, _ = outbox_row(uow, INVITEE)
    assert link is not None
    assert link.startswith(f"{PUBLIC_URL}/invitations/{org_id}.")
    assert mail.LINK in body
    assert "/invitations/" not in body

    config = Config(public_url=PUBLIC_URL, smtp_url=smtp.url)
    assert run_once(uow, config).mail_failed == 0

    # The recipient got the working link, in the text where the placeholder stood.
    received = smtp.wait_for(INVITEE)
    assert received.link == link
    assert mail.LINK not in received.text
    secret = received.token.rsplit(".", 1)[1]
    assert len(secret) >= 20

    # Nothing stored holds the token or its secret any more: the outbox forgot the link.
    _, link, attempts, sent = outbox_row(uow, INVITEE)
    assert (link, attempts, sent) == (None, 1, True)
    everything = stored_text(uow)
    assert "mail_outbox: " in everything
    assert "invitations: " in everything
    assert received.token not in everything
    assert secret not in everything

    # The link still works: the invitee signs up with that address and accepts.
    created = api.call("POST", "/users", json={"email": INVITEE, "password": PASSWORD, "name": "I"})
    assert created.status_code == 201, created.text
    issued = api.call("POST", "/tokens", json={"email": INVITEE, "password": PASSWORD})
    accepted = api.call(
        "POST", f"/invitations/{received.token}/accept", token=issued.json()["token"]
    )
    assert accepted.status_code == 201, accepted.text


def test_a_message_given_up_on_forgets_its_link(
    api: Api, app: FastAPI, uow: UnitOfWork, smtp: SmtpServer, clock: FakeClock
) -> None:
    invite(api, INVITEE)
    smtp.stop()  # the mail server is down for good
    config = Config(public_url=PUBLIC_URL, smtp_url=smtp.url)

    for attempt in range(1, mail.MAX_ATTEMPTS + 1):
        assert run_once(uow, config).mail_sent == 0
        _, link, attempts, sent = outbox_row(uow, INVITEE)
        assert (attempts, sent) == (attempt, False)
        # Kept for the retries while there are any left; forgotten with the last one.
        assert (link is None) == (attempt == mail.MAX_ATTEMPTS)
        clock.advance(seconds=mail.retry_delay(attempt).total_seconds() + 1)

    run_once(uow, config)
    assert outbox_row(uow, INVITEE)[2] == mail.MAX_ATTEMPTS  # given up: no more attempts
    assert "/invitations/" not in stored_text(uow)
