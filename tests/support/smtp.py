"""A real SMTP server on 127.0.0.1 (aiosmtpd, in a thread of the test process) that keeps what
it receives, for tests of the mail the worker sends."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

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


class Collector:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.arrived = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        with self.arrived:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
            self.arrived.notify_all()
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    """A real SMTP server on 127.0.0.1 that can be stopped and started again on its port."""

    port: int
    collector: Collector = field(default_factory=Collector)
    controller: Controller | None = None

    @property
    def url(self) -> str:
        """The CREDITPOOL_SMTP_URL that points at this server."""
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def received(self) -> list[Received]:
        return self.collector.received

    def start(self) -> None:
        self.controller = Controller(self.collector, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def wait_for(self, address: str, *, timeout: float = 15.0) -> Received:
        """Wait (at most `timeout` seconds) for the first message to `address`; return it."""

        def first() -> Received | None:
            return next((r for r in self.received if address in r.recipients), None)

        with self.collector.arrived:
            found = self.collector.arrived.wait_for(first, timeout=timeout)
        assert found is not None, (
            f"no message to {address} within {timeout} s; got mail for "
            f"{[r.recipients for r in self.received]}"
        )
        return found


@contextmanager
def smtp_server() -> Iterator[SmtpServer]:
    """Run an SMTP server on a free port for the duration of the block."""
    server = SmtpServer(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
