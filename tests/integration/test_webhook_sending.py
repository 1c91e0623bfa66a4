"""How one webhook request is sent: at the address that was checked, and within its time.

- A request goes to the very address its host resolved to when checked (DNS rebinding cannot
  aim it elsewhere between the check and the connection); the Host header and, for https,
  the name the certificate must carry stay the URL's own.
- An endpoint that keeps the request alive by sending its answer a byte at a time is cut off
  when the whole request has taken the timeout, so no send outlasts a worker's lease.
- A host that resolves to no public address is refused unsent.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from creditpool.services import webhook_delivery
from creditpool.services.webhook_delivery import Job, pinned


@pytest.mark.parametrize(
    ("url", "address", "expected"),
    [
        (
            "http://hooks.vendor.example/in?x=1",
            "93.184.216.34",
            ("http://93.184.216.34/in?x=1", "hooks.vendor.example", None),
        ),
        (
            "https://user:pw@hooks.vendor.example:8443/in",
            "93.184.216.34",
            ("https://93.184.216.34:8443/in", "hooks.vendor.example:8443", "hooks.vendor.example"),
        ),
        (
            "https://hooks.vendor.example/in",
            "2606:2800:220:1:248:1893:25c8:1946",
            (
                "https://[2606:2800:220:1:248:1893:25c8:1946]/in",
                "hooks.vendor.example",
                "hooks.vendor.example",
            ),
        ),
    ],
)
def test_a_request_is_aimed_at_the_checked_address(
    url: str, address: str, expected: tuple[str, str, str | None]
) -> None:
    aimed = pinned(url, address)
    assert (aimed.url, aimed.host, aimed.sni_hostname) == expected


@pytest.fixture
def dripping_endpoint() -> Iterator[str]:
    """An endpoint that answers one byte of its head every 0.2 s, never finishing it."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.recv(65536)
                for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 10_000:
                    if stop.is_set():
                        break
                    try:
                        connection.sendall(bytes([byte]))
                    except OSError:
                        break
                    time.sleep(0.2)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/hooks"
    stop.set()
    thread.join(timeout=5)
    listener.close()


def job(url: str) -> Job:
    return Job(
        org_id="org_x",
        delivery_id="whd_x",
        event_id="evt_x",
        url=url,
        secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        body='{"type": "org.paused"}',
        leased_until=datetime.now(UTC),
    )


def test_an_endpoint_that_drips_its_answer_is_cut_off_at_the_timeout(
    dripping_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each byte comes well within any per-read timeout; only a limit on the whole request ends it.
    monkeypatch.setattr(webhook_delivery, "TIMEOUT_SECONDS", 1.0)
    send = webhook_delivery.http_sender(private_networks=True)
    started = time.monotonic()
    outcome = send(job(dripping_endpoint))
    took = time.monotonic() - started
    assert outcome.status_code is None
    assert outcome.error == "no answer within 1 s"
    assert took < 3.0, took


def test_a_host_with_no_public_address_is_refused_unsent(dripping_endpoint: str) -> None:
    send = webhook_delivery.http_sender(private_networks=False)
    outcome = send(job(dripping_endpoint.replace("127.0.0.1", "localhost")))
    assert outcome.status_code is None
    assert outcome.error is not None
    assert outcome.error.startswith("refused: ")
    assert "is not a public address" in outcome.error
    unresolvable = send(job("http://no-such-host.invalid/hooks"))
    assert unresolvable.error is not None
    assert unresolvable.error.startswith("refused: no-such-host.invalid does not resolve")
