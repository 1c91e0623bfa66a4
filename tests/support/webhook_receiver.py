"""A real HTTP server standing in for a vendor's webhook endpoint.

It listens on a free loopback port in a thread, checks every request's Standard Webhooks
signature with the `standardwebhooks` package (as a vendor would), and answers each request
with the next status of a script (then 200 for good), so a test can make deliveries fail on
purpose and see the retries.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass(frozen=True)
class Received:
    """One request the receiver got, whether its signature held, and what it answered."""

    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    answered: int

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class Receiver:
    """The running receiver: its URL, the secret it verifies with, and what it received."""

    url: str
    secret: str | None = None  # set once the endpoint is made (its secret is shown then)
    more_secrets: list[str] = field(default_factory=list)  # of other endpoints sent here
    delay: float = 0.0  # seconds to wait before answering
    statuses: list[int] = field(default_factory=list)  # answers to come, in order
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self) -> int:
        with self.lock:
            return self.statuses.pop(0) if self.statuses else 200

    def verified_events(self) -> list[dict[str, Any]]:
        """The bodies of the requests whose signature held, in order."""
        return [item.event for item in self.received if item.verified]


class _Server(ThreadingHTTPServer):
    # Several workers each send a batch at once: a listen queue of 5 (the default) overflows
    # on a loaded machine, and a dropped connection fails its attempt.
    request_queue_size = 128


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    """Serve a receiver on 127.0.0.1 for the duration of the block."""
    receiver: Receiver | None = None

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            assert receiver is not None
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {name.lower(): value for name, value in self.headers.items()}
            verified = False
            for secret in [receiver.secret, *receiver.more_secrets]:
                if secret is None:
                    continue
                try:
                    Webhook(secret).verify(body, headers)
                except WebhookVerificationError:
                    continue
                verified = True
            if receiver.delay:
                time.sleep(receiver.delay)
            status = receiver.answer() if verified else 400
            with receiver.lock:
                receiver.received.append(Received(self.path, headers, body, verified, status))
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = _Server(("127.0.0.1", 0), Handler)
    receiver = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}/hooks")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
