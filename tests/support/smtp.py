"""A real SMTP server on 127.0.0.1 (aiosmtpd, in a thread of the test process) that keeps what
it receives, for tests of the mail the worker sends.

It speaks plain SMTP, or TLS from the first byte (smtps://), or STARTTLS, with a certificate
from a throwaway authority (trustme); it can ask for a password, and notes every login and
whether it came over an encrypted connection.
"""

from __future__ import annotations

import re
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support.server import free_port

_INVITATION_LINK = re.compile(r"\bhttps?://\S+/invitations/\S+")


@dataclass
class Received:
    """One message as the SMTP server got it."""

    mail_from: str
    recipients: list[str]
    message: EmailMessage

    @property
    def text(self) -> str:
        """The plain-text body, transfer encoding undone as a mail client would."""
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None
        return str(part.get_content())

    @property
    def link(self) -> str:
        """The one invitation link in the body."""
        links = _INVITATION_LINK.findall(self.text)
        assert len(links) == 1, self.text
        return str(links[0])

    @property
    def token(self) -> str:
        """The invitation token the link carries."""
        return self.link.rpartition("/invitations/")[2]


@dataclass(frozen=True)
class Login:
    """One AUTH attempt as the SMTP server saw it."""

    user: str
    password: str
    encrypted: bool


class Collector:
    """An aiosmtpd handler that keeps every message it accepts and every login tried."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.logins: list[Login] = []
        self.arrived = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        with self.arrived:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
            self.arrived.notify_all()
        return "250 Message accepted for delivery"


Security = Literal["plain", "tls", "starttls"]


@dataclass
class CertificateAuthority:
    """A throwaway certificate authority, and a certificate it issued for 127.0.0.1."""

    ca: trustme.CA = field(default_factory=trustme.CA)

    def __post_init__(self) -> None:
        self.certificate = self.ca.issue_cert("127.0.0.1")

    def server_context(self) -> ssl.SSLContext:
        """A server-side TLS context presenting the certificate."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.certificate.configure_cert(context)
        return context

    def write_ca_file(self, directory: Path) -> str:
        """Write the authority's certificate (what a client must trust) into a file; its path."""
        path = directory / "smtp-ca.pem"
        self.ca.cert_pem.write_to_path(str(path))
        return str(path)


@dataclass
class SmtpServer:
    """A real SMTP server on 127.0.0.1 that can be stopped and started again on its port.

    `security` is how clients connect ("tls" and "starttls" need `authority`); with
    `credentials` it offers AUTH, on any connection, and accepts that one user and password.
    """

    port: int
    collector: Collector = field(default_factory=Collector)
    controller: Controller | None = None
    security: Security = "plain"
    authority: CertificateAuthority | None = None
    credentials: tuple[str, str] | None = None

    @property
    def url(self) -> str:
        """The CREDITPOOL_SMTP_URL that points at this server (with the password it wants)."""
        scheme = "smtps" if self.security == "tls" else "smtp"
        user = ""
        if self.credentials is not None:
            user = f"{quote(self.credentials[0], safe='')}:{quote(self.credentials[1], safe='')}@"
        query = "?starttls=true" if self.security == "starttls" else ""
        return f"{scheme}://{user}127.0.0.1:{self.port}{query}"

    @property
    def received(self) -> list[Received]:
        return self.collector.received

    @property
    def logins(self) -> list[Login]:
        return self.collector.logins

    def start(self) -> None:
        options: dict[str, Any] = {}
        if self.security != "plain":
            assert self.authority is not None, "TLS needs a certificate authority"
            context = self.authority.server_context()
            if self.security == "tls":
                options["ssl_context"] = context
            else:
                options.update(tls_context=context, require_starttls=True)
        if self.credentials is not None:
            # Offered even in clear, so that a test sees whether a client would send it.
            options.update(authenticator=self._authenticate, auth_require_tls=False)
        self.controller = Controller(
            self.collector, hostname="127.0.0.1", port=self.port, **options
        )
        self.controller.start()

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        login = Login(
            data.login.decode(),
            data.password.decode(),
            encrypted=server.transport.get_extra_info("ssl_object") is not None,
        )
        self.collector.logins.append(login)
        return AuthResult(success=(login.user, login.password) == self.credentials)

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def wait_for(self, address: str, *, containing: str = "", timeout: float = 15.0) -> Received:
        """Wait (at most `timeout` seconds) for the first message to `address` whose text holds
        `containing`; return it."""

        def first() -> Received | None:
            return next(
                (r for r in self.received if address in r.recipients and containing in r.text),
                None,
            )

        with self.collector.arrived:
            found = self.collector.arrived.wait_for(first, timeout=timeout)
        assert found is not None, (
            f"no message to {address} within {timeout} s; got mail for "
            f"{[r.recipients for r in self.received]}"
        )
        return found


@contextmanager
def smtp_server(
    security: Security = "plain",
    *,
    authority: CertificateAuthority | None = None,
    credentials: tuple[str, str] | None = None,
) -> Iterator[SmtpServer]:
    """Run an SMTP server on a free port for the duration of the block."""
    server = SmtpServer(
        free_port(), security=security, authority=authority, credentials=credentials
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()
