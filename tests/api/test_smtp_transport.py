"""How mail reaches the SMTP server: TLS that checks the certificate, and no password in clear.

A real aiosmtpd server on 127.0.0.1 speaks TLS from the first byte (smtps://) or STARTTLS,
with a certificate from a throwaway authority that the machine does not trust; a test either
names that authority's certificate in `smtp_ca_file` or does not. The server asks for a
password and notes each login, so the tests see whether the password ever left.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from creditpool.config import Config, ConfigError
from creditpool.mailer import sender_for, smtp_sender
from creditpool.services import mail
from creditpool.storage.schema import MailMessage
from creditpool.storage.unit_of_work import UnitOfWork
from creditpool.worker import Worker, run_once
from tests.api.support import OPERATOR_KEY, PUBLIC_URL, Api
from tests.support.clock import FakeClock
from tests.support.smtp import CertificateAuthority, Login, Security, SmtpServer, smtp_server

INVITEE = "tess.invited@example.test"
CREDENTIALS = ("mailer", "smtp pass/word")  # a slash, a space: quoted in the URL


@pytest.fixture
def uow(app: FastAPI) -> UnitOfWork:
    """A unit of work on the app's (rolled-back) database."""
    return UnitOfWork(app.state.session_factory, app.state.clock)


@pytest.fixture(scope="module")
def authority() -> CertificateAuthority:
    return CertificateAuthority()


def invite(api: Api) -> None:
    """Put one invitation to INVITEE in the outbox."""
    owner, token = api.sign_up("Owner")
    created = api.call(
        "POST",
        "/orgs",
        token=OPERATOR_KEY,
        json={"name": "TLS class", "owner_email": owner["email"]},
    )
    assert created.status_code == 201, created.text
    invited = api.call(
        "POST", f"/orgs/{created.json()['id']}/invitations", token=token, json={"emails": [INVITEE]}
    )
    assert invited.status_code == 201, invited.text


def queued(uow: UnitOfWork) -> tuple[bool, int, str | None]:
    """Return (sent, attempts, last_error) of the message to INVITEE."""
    with uow:
        [message] = uow.session.scalars(
            select(MailMessage).where(MailMessage.to_address == INVITEE)
        )
        return message.sent_at is not None, message.attempts, message.last_error


@pytest.fixture(params=["tls", "starttls"])
def tls_server(
    request: pytest.FixtureRequest, authority: CertificateAuthority
) -> Iterator[SmtpServer]:
    security: Security = request.param
    with smtp_server(security, authority=authority, credentials=CREDENTIALS) as server:
        yield server


def test_a_certificate_nobody_trusts_gets_no_mail_and_no_password_until_its_authority_is_named(
    api: Api,
    uow: UnitOfWork,
    clock: FakeClock,
    tls_server: SmtpServer,
    authority: CertificateAuthority,
    tmp_path: Path,
) -> None:
    invite(api)
    config = Config(public_url=PUBLIC_URL, smtp_url=tls_server.url)

    # The system's authorities do not vouch for this server: it could be anyone.
    assert run_once(uow, config).mail_sent == 0
    sent, attempts, error = queued(uow)
    assert (sent, attempts) == (False, 1)
    assert error is not None
    assert "CERTIFICATE_VERIFY_FAILED" in error
    assert tls_server.received == []
    assert tls_server.logins == []  # the password did not go to an unverified server

    # With the authority named, the next attempt goes through, logging in over TLS.
    trusting = Config(
        public_url=PUBLIC_URL,
        smtp_url=tls_server.url,
        smtp_ca_file=authority.write_ca_file(tmp_path),
    )
    clock.advance(seconds=mail.retry_delay(1).total_seconds() + 1)
    assert run_once(uow, trusting).mail_failed == 0
    assert tls_server.wait_for(INVITEE).link.startswith(f"{PUBLIC_URL}/invitations/")
    assert tls_server.logins  # one a message
    assert set(tls_server.logins) == {Login(*CREDENTIALS, encrypted=True)}
    assert queued(uow)[:2] == (True, 2)


def test_a_password_over_plain_smtp_is_refused_at_start_unless_allowed(uow: UnitOfWork) -> None:
    url = "smtp://mailer:secret@127.0.0.1:2525"
    refused = Config(smtp_url=url)
    with pytest.raises(ConfigError, match="CREDITPOOL_SMTP_ALLOW_PLAINTEXT_AUTH"):
        sender_for(refused)
    with pytest.raises(ConfigError, match="not be encrypted"):
        Worker(uow, refused)  # what `creditpool serve` makes before it listens
    with pytest.raises(ConfigError, match="not be encrypted"):
        run_once(uow, refused)  # what `creditpool worker` does first
    # Encrypted, or no password, or explicitly allowed: the service starts.
    for fine in (
        Config(smtp_url="smtps://mailer:secret@127.0.0.1:2525"),
        Config(smtp_url="smtp://mailer:secret@127.0.0.1:2525?starttls=true"),
        Config(smtp_url="smtp://127.0.0.1:2525"),
        Config(smtp_url=url, smtp_allow_plaintext_auth=True),
    ):
        assert sender_for(fine) is not None


@pytest.fixture
def plain_server() -> Iterator[SmtpServer]:
    """A server without TLS that nevertheless offers to take a password."""
    with smtp_server("plain", credentials=CREDENTIALS) as server:
        yield server


@pytest.mark.parametrize(
    ("query", "refusal"), [("", "PlaintextAuthRefused"), ("?starttls=true", "STARTTLS")]
)
def test_a_send_never_logs_in_over_a_connection_without_tls(
    api: Api, uow: UnitOfWork, plain_server: SmtpServer, query: str, refusal: str
) -> None:
    invite(api)
    # Past the check at start (a sender made by hand): the connection itself is checked.
    send = smtp_sender(plain_server.url + query, mail_from="creditpool <a@creditpool.test>")
    assert run_once(uow, Config(), send).mail_sent == 0
    sent, attempts, error = queued(uow)
    assert (sent, attempts) == (False, 1)
    assert error is not None
    assert refusal in error
    assert plain_server.logins == []
    assert plain_server.received == []


def test_a_password_goes_in_clear_only_when_allowed(
    api: Api, uow: UnitOfWork, plain_server: SmtpServer
) -> None:
    invite(api)
    config = Config(smtp_url=plain_server.url, smtp_allow_plaintext_auth=True)
    assert run_once(uow, config).mail_failed == 0
    assert plain_server.logins  # one a message
    assert set(plain_server.logins) == {Login(*CREDENTIALS, encrypted=False)}
    assert plain_server.wait_for(INVITEE).recipients == [INVITEE]
