"""E-mailed invitations, delivered by the worker to a real SMTP server on localhost.

The server is aiosmtpd in a thread of the test process; the worker pass is `run_once` with a
configuration that names it. Both engines run: a pass over a handful of messages costs
milliseconds, so there is no reason to leave PostgreSQL out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from creditpool.config import Config
from creditpool.services import mail
from creditpool.storage.schema import MailMessage
from creditpool.storage.unit_of_work import UnitOfWork
from creditpool.worker import PassReport, run_once
from tests.api.support import OPERATOR_KEY, PASSWORD, PUBLIC_URL, Api, problem
from tests.support.clock import FakeClock
from tests.support.smtp import Received, SmtpServer, smtp_server

ORG_NAME = "Harbour animation studio"
MAIL_FROM = "creditpool <invites@creditpool.test>"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@dataclass(frozen=True)
class Queued:
    """What the outbox holds about one message."""

    subject: str
    attempts: int
    last_error: str | None
    sent: bool


@dataclass
class Outbox:
    """The worker's view: a unit of work on the app's (rolled-back) database, and a config."""

    uow: UnitOfWork
    config: Config

    def work(self) -> PassReport:
        """Run one worker pass."""
        return run_once(self.uow, self.config)

    def messages_to(self, address: str) -> list[Queued]:
        """Return the outbox rows addressed to `address`."""
        with self.uow:
            rows = self.uow.session.scalars(
                select(MailMessage).where(MailMessage.to_address == address)
            )
            return [
                Queued(row.subject, row.attempts, row.last_error, row.sent_at is not None)
                for row in rows
            ]


@pytest.fixture
def outbox(app: FastAPI, smtp: SmtpServer) -> Outbox:
    config = Config(public_url=PUBLIC_URL, smtp_url=smtp.url, mail_from=MAIL_FROM)
    return Outbox(UnitOfWork(app.state.session_factory, app.state.clock), config)


def org_with_owner(api: Api) -> tuple[str, str]:
    """Create an org (cheaper than `world`); return its id and its owner's token."""
    owner, token = api.sign_up("Owner")
    created = api.call(
        "POST", "/orgs", token=OPERATOR_KEY, json={"name": ORG_NAME, "owner_email": owner["email"]}
    )
    assert created.status_code == 201, created.text
    return created.json()["id"], token


def sign_up_as(api: Api, email: str, name: str) -> str:
    """Sign up a person with this e-mail; return a personal token."""
    created = api.call("POST", "/users", json={"email": email, "password": PASSWORD, "name": name})
    assert created.status_code == 201, created.text
    issued = api.call("POST", "/tokens", json={"email": email, "password": PASSWORD})
    assert issued.status_code == 201, issued.text
    return str(issued.json()["token"])


def statuses(api: Api, org_id: str, token: str, **params: str) -> dict[str, str]:
    listed = api.call("GET", f"/orgs/{org_id}/invitations", token=token, params=params)
    assert listed.status_code == 200, listed.text
    return {item["email"]: item["status"] for item in listed.json()["items"]}


def test_invitations_are_mailed_and_accepted_once_by_the_invited_address(
    api: Api, smtp: SmtpServer, outbox: Outbox, clock: FakeClock
) -> None:
    org_id, owner = org_with_owner(api)
    outbox.work()  # the owner's sign-up mailed a link that confirms the address: out of the way
    smtp.received.clear()
    ada, bo = "ada.invited@example.test", "bo.invited@example.test"

    invited = api.call(
        "POST",
        f"/orgs/{org_id}/invitations",
        token=owner,
        json={"emails": [ada, bo], "seat": "unlicensed"},
    )
    assert invited.status_code == 201, invited.text
    items = invited.json()["items"]
    assert sorted(item["email"] for item in items) == [ada, bo]
    assert {(item["role"], item["seat"], item["status"]) for item in items} == {
        ("member", "unlicensed", "pending")
    }
    assert smtp.received == []  # the request only fills the outbox; the worker sends

    report = outbox.work()
    assert (report.mail_sent, report.mail_failed) == (2, 0)
    assert sorted(received.recipients[0] for received in smtp.received) == [ada, bo]
    by_address: dict[str, Received] = {}
    for received in smtp.received:
        assert len(received.recipients) == 1
        address = received.recipients[0]
        assert received.message["To"] == address
        assert ORG_NAME in str(received.message["Subject"])
        assert "invites@creditpool.test" in str(received.message["From"])
        assert received.link == f"{PUBLIC_URL}/invitations/{received.token}"
        by_address[address] = received
    ada_token, bo_token = by_address[ada].token, by_address[bo].token
    assert ada_token != bo_token

    # Sent once: another pass finds nothing due.
    assert outbox.work().mail_sent == 0
    assert len(smtp.received) == 2

    # The link's secret is only in the e-mail, never in what the API shows admins.
    listed = api.call("GET", f"/orgs/{org_id}/invitations", token=owner)
    for secret in (ada_token.split(".")[-1], bo_token.split(".")[-1]):
        assert secret not in invited.text
        assert secret not in listed.text

    # Someone else who got hold of the link cannot use it, nor a link with a forged secret.
    _, intruder = api.sign_up("Intruder")
    problem(
        api.call("POST", f"/invitations/{ada_token}/accept", token=intruder), 404, "invite_invalid"
    )
    forged = ada_token[:-4] + ("AAAA" if not ada_token.endswith("AAAA") else "BBBB")
    ada_user = sign_up_as(api, ada, "Ada")  # a forged link is refused even to the invitee
    problem(
        api.call("POST", f"/invitations/{forged}/accept", token=ada_user), 404, "invite_invalid"
    )
    problem(api.call("POST", "/invitations/nonsense/accept", token=ada_user), 404, "invite_invalid")

    # The invited person signs up with that address and follows the link.
    accepted = api.call("POST", f"/invitations/{ada_token}/accept", token=ada_user)
    assert accepted.status_code == 201, accepted.text
    member = accepted.json()
    assert (member["email"], member["role"], member["seat"], member["status"]) == (
        ada,
        "member",
        "unlicensed",
        "active",
    )
    members = api.call("GET", f"/orgs/{org_id}/members", token=owner).json()["items"]
    assert member["id"] in {item["id"] for item in members}
    assert sorted(item["email"] for item in members if item["role"] == "member") == [ada]

    # The link works once.
    problem(
        api.call("POST", f"/invitations/{ada_token}/accept", token=ada_user), 404, "invite_invalid"
    )

    # Fourteen days later an unused invitation has expired, even for the right person.
    bo_user = sign_up_as(api, bo, "Bo")
    clock.advance(days=15)
    problem(
        api.call("POST", f"/invitations/{bo_token}/accept", token=bo_user), 404, "invite_invalid"
    )
    assert statuses(api, org_id, owner) == {ada: "accepted", bo: "expired"}
    assert statuses(api, org_id, owner, status="pending") == {}
    assert statuses(api, org_id, owner, status="expired") == {bo: "expired"}
    members = api.call("GET", f"/orgs/{org_id}/members", token=owner).json()["items"]
    assert bo not in {item["email"] for item in members}


def test_a_failed_send_keeps_the_invitation_and_is_retried(
    api: Api, smtp: SmtpServer, outbox: Outbox, clock: FakeClock
) -> None:
    org_id, owner = org_with_owner(api)
    outbox.work()  # the owner's sign-up mailed a link that confirms the address: out of the way
    smtp.received.clear()
    cleo = "cleo.invited@example.test"

    smtp.stop()  # the mail server is down: nothing listens on its port
    invited = api.call("POST", f"/orgs/{org_id}/invitations", token=owner, json={"emails": [cleo]})
    assert invited.status_code == 201, invited.text
    invitation_id = invited.json()["items"][0]["id"]

    report = outbox.work()
    assert (report.mail_sent, report.mail_failed) == (0, 1)
    assert statuses(api, org_id, owner) == {cleo: "pending"}
    [queued] = outbox.messages_to(cleo)
    assert not queued.sent
    assert queued.attempts == 1
    assert queued.last_error
    assert ORG_NAME in queued.subject

    # Back up, but the retry is not due yet: the pass leaves the message alone.
    smtp.start()
    report = outbox.work()
    assert (report.mail_sent, report.mail_failed) == (0, 0)
    assert smtp.received == []

    # Past the retry delay the next pass delivers it, once.
    clock.advance(seconds=mail.retry_delay(1).total_seconds() + 1)
    report = outbox.work()
    assert (report.mail_sent, report.mail_failed) == (1, 0)
    [received] = smtp.received
    assert received.recipients == [cleo]
    [delivered] = outbox.messages_to(cleo)
    assert delivered.sent
    assert outbox.work().mail_sent == 0
    assert len(smtp.received) == 1

    # An admin withdraws the invitation after it went out: its link no longer works.
    revoked = api.call("DELETE", f"/orgs/{org_id}/invitations/{invitation_id}", token=owner)
    assert revoked.status_code == 204, revoked.text
    cleo_user = sign_up_as(api, cleo, "Cleo")
    problem(
        api.call("POST", f"/invitations/{received.token}/accept", token=cleo_user),
        404,
        "invite_invalid",
    )
    assert statuses(api, org_id, owner) == {cleo: "revoked"}
    members = api.call("GET", f"/orgs/{org_id}/members", token=owner).json()["items"]
    assert cleo not in {item["email"] for item in members}
