"""Sending e-mail over SMTP, configured by one URL.

smtp://host:port                     plain SMTP (a local relay), no password
smtp://user:password@host:587?starttls=true
smtps://user:password@host:465       SMTP over TLS

The mail server's certificate is verified, against CREDITPOOL_SMTP_CA_FILE when set, else the
system's trusted authorities: smtplib alone would accept any certificate. A password never goes
over a connection that is not encrypted unless CREDITPOOL_SMTP_ALLOW_PLAINTEXT_AUTH says so:
such a URL is refused when the service starts, and each send checks the connection again.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

from creditpool.config import Config, ConfigError
from creditpool.services.mail import MailSender, OutgoingMail

SMTP_TIMEOUT_SECONDS = 20
_YES = ("1", "true", "yes", "on")


class PlaintextAuthRefused(smtplib.SMTPException):
    """The connection to the mail server is not encrypted, so the password is not sent."""


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to reach the mail server, read from CREDITPOOL_SMTP_URL."""

    host: str
    port: int
    implicit_tls: bool  # smtps://: TLS from the first byte
    starttls: bool  # smtp://...?starttls=true: TLS before anything else is said
    user: str | None
    password: str | None

    @property
    def encrypted(self) -> bool:
        """Whether everything after the greeting goes over TLS."""
        return self.implicit_tls or self.starttls


def parse_smtp_url(url: str) -> SmtpSettings:
    """Read an SMTP URL; ConfigError if it is malformed."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ConfigError("CREDITPOOL_SMTP_URL must look like smtp://host:port or smtps://host")
    implicit_tls = parts.scheme == "smtps"
    starttls = parse_qs(parts.query).get("starttls", ["false"])[0].lower() in _YES
    try:
        port = parts.port or (465 if implicit_tls else 25)
    except ValueError as error:
        raise ConfigError(f"CREDITPOOL_SMTP_URL has a bad port: {error}") from error
    return SmtpSettings(
        host=parts.hostname,
        port=port,
        implicit_tls=implicit_tls,
        starttls=starttls,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def smtp_sender(
    url: str,
    *,
    mail_from: str,
    ca_file: str | None = None,
    allow_plaintext_auth: bool = False,
) -> MailSender:
    """Return a function that sends one message through the SMTP server at `url`.

    Raises ConfigError at once for a malformed URL. A send that would log in over a
    connection that is not encrypted fails with PlaintextAuthRefused, unless allowed.
    """
    settings = parse_smtp_url(url)
    # Verifies the certificate and the host name; made once, used for every connection.
    try:
        tls = ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as error:
        raise ConfigError(f"CREDITPOOL_SMTP_CA_FILE cannot be read: {error}") from error

    def send(mail: OutgoingMail) -> None:
        message = EmailMessage()
        message["From"] = mail_from
        message["To"] = mail.to_address
        message["Subject"] = mail.subject
        message["Message-ID"] = f"<{mail.id}@creditpool>"
        message.set_content(mail.body)
        server = (
            smtplib.SMTP_SSL(
                settings.host, settings.port, timeout=SMTP_TIMEOUT_SECONDS, context=tls
            )
            if settings.implicit_tls
            else smtplib.SMTP(settings.host, settings.port, timeout=SMTP_TIMEOUT_SECONDS)
        )
        with server:
            if settings.starttls:
                server.starttls(context=tls)  # raises if the server does not offer it
            if settings.user is not None:
                # Checked on the live connection too, not only on the URL at start.
                if not isinstance(server.sock, ssl.SSLSocket) and not allow_plaintext_auth:
                    raise PlaintextAuthRefused(
                        "the connection to the mail server is not encrypted; "
                        "the password was not sent"
                    )
                server.login(settings.user, settings.password or "")
            server.send_message(message)

    return send


def sender_for(config: Config) -> MailSender | None:
    """Return the sender the configuration describes, or None without an SMTP server.

    Raises ConfigError for a URL that is malformed or would send a password in clear, so that
    the service refuses to start with it.
    """
    if config.smtp_url is None:
        return None
    settings = parse_smtp_url(config.smtp_url)
    in_clear = settings.user is not None and not settings.encrypted
    if in_clear and not config.smtp_allow_plaintext_auth:
        raise ConfigError(
            "CREDITPOOL_SMTP_URL names a user but the connection would not be encrypted: "
            "use smtps://, or add ?starttls=true, or set CREDITPOOL_SMTP_ALLOW_PLAINTEXT_AUTH=on"
        )
    return smtp_sender(
        config.smtp_url,
        mail_from=config.mail_from,
        ca_file=config.smtp_ca_file,
        allow_plaintext_auth=config.smtp_allow_plaintext_auth,
    )
