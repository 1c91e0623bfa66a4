"""Sending e-mail over SMTP, configured by one URL.

smtp://host:port                     plain SMTP (a local relay)
smtp://user:password@host:587?starttls=true
smtps://user:password@host:465       SMTP over TLS
"""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

from creditpool.services.mail import MailSender, OutgoingMail

SMTP_TIMEOUT_SECONDS = 20


def smtp_sender(url: str, *, mail_from: str) -> MailSender:
    """Return a function that sends one message through the SMTP server at `url`."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("CREDITPOOL_SMTP_URL must look like smtp://host:port or smtps://host")
    use_tls = parts.scheme == "smtps"
    starttls = parse_qs(parts.query).get("starttls", ["false"])[0].lower() in ("1", "true", "yes")
    host, port = parts.hostname, parts.port or (465 if use_tls else 25)
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None

    def send(mail: OutgoingMail) -> None:
        message = EmailMessage()
        message["From"] = mail_from
        message["To"] = mail.to_address
        message["Subject"] = mail.subject
        message["Message-ID"] = f"<{mail.id}@creditpool>"
        message.set_content(mail.body)
        kind = smtplib.SMTP_SSL if use_tls else smtplib.SMTP
        with kind(host, port, timeout=SMTP_TIMEOUT_SECONDS) as server:
            if starttls:
                server.starttls()
            if user is not None:
                server.login(user, password or "")
            server.send_message(message)

    return send
