"""A forwarding HTTP proxy on 127.0.0.1 that fails on purpose, in front of a real server.

Each fault queued applies to the next write (any method but GET) that passes:
- "drop": the request reaches the server (which applies it), then the connection is closed
  without a byte of the answer, as when a network drops between the two;
- "503 after": the request reaches the server, whose answer is replaced by a 503;
- "503 before": a 503 answered at once, the server never seeing the request.
Every request is noted with its Idempotency-Key, so a test sees what the client sent again.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import urlsplit

Fault = Literal["drop", "503 after", "503 before"]
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length"}


@dataclass(frozen=True)
class Seen:
    """One request as the proxy received it."""

    method: str
    path: str
    idempotency_key: str | None
    fault: Fault | None


class FaultyProxy(ThreadingHTTPServer):
    """The proxy: `faults` is the queue of faults for the next writes; `seen` what came."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        parts = urlsplit(upstream)
        assert parts.hostname is not None
        assert parts.port is not None
        self.upstream = (parts.hostname, parts.port)
        self.faults: list[Fault] = []
        self.seen: list[Seen] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def next_fault(self, method: str) -> Fault | None:
        with self.lock:
            return self.faults.pop(0) if method != "GET" and self.faults else None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FaultyProxy

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads `seen`, not a log."""

    def _forward(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else None
        fault = self.server.next_fault(self.command)
        with self.server.lock:
            key = self.headers.get("idempotency-key")
            self.server.seen.append(Seen(self.command, self.path, key, fault))
        if fault == "503 before":
            self._unavailable()
            return
        upstream = http.client.HTTPConnection(*self.server.upstream, timeout=30)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            upstream.request(self.command, self.path, body, headers)
            answer = upstream.getresponse()
            content = answer.read()
        finally:
            upstream.close()
        if fault == "drop":
            # Applied upstream, and the answer lost: close without a byte.
            self.close_connection = True
            return
        if fault == "503 after":
            self._unavailable()
            return
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("content-length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def _unavailable(self) -> None:
        problem = json.dumps(
            {
                "type": "about:blank",
                "title": "Service unavailable",
                "status": 503,
                "detail": "the proxy says: try again",
                "code": "unavailable",
            }
        ).encode()
        self.send_response(503)
        self.send_header("content-type", "application/problem+json")
        self.send_header("retry-after", "0")
        self.send_header("content-length", str(len(problem)))
        self.end_headers()
        self.wfile.write(problem)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward  # noqa: N815


@contextmanager
def faulty_proxy(upstream: str) -> Iterator[FaultyProxy]:
    """Run a FaultyProxy in front of `upstream` for the duration of the block."""
    proxy = FaultyProxy(upstream)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()
        thread.join()
