"""Request bodies of bounded size, refused before they are read whole.

A pure ASGI middleware, so it sees the body as it arrives, chunk by chunk: a declared
Content-Length over the limit is refused before a byte of the body is read, and a streamed
(chunked) body is counted as it comes and refused the moment it passes the limit. Either way
the answer is 413 problem+json `payload_too_large`, for the API and the pages alike, and the
connection is closed, since the rest of the body is never read.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from creditpool.api.problems import problem
from creditpool.domain.errors import PayloadTooLarge
from creditpool.http_status import status_of

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

# Batch usage carries up to 1,000 events, so it may send this many times the usual limit.
BATCH_FACTOR = 4
_BATCH_USAGE = re.compile(r"/api/v1/orgs/[^/]+/usage/?")


class _TooLarge(Exception):
    """The body passed its limit while the application was reading it."""


def body_limit(path: str, method: str, max_body_bytes: int) -> int:
    """Return how many bytes the body of a request to `path` may have."""
    if method == "POST" and _BATCH_USAGE.fullmatch(path):
        return max_body_bytes * BATCH_FACTOR
    return max_body_bytes


class BodySizeLimit:
    """Refuse request bodies over their limit with 413, before they are read whole."""

    def __init__(self, app: App, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, counting its body; answer 413 once it is too large."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope["path"], scope["method"], self.max_body_bytes)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(scope, receive, send, limit)
            return
        received = 0
        exceeded = False
        response_started = False

        async def counted_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                raise _TooLarge
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            # Once the body is too large, whatever the application makes of the broken read
            # (FastAPI calls it a malformed body) is dropped: the answer is the 413 below.
            if exceeded and not response_started:
                return
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not response_started:
            await _refuse(scope, receive, send, limit)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            # The server refuses a malformed length itself; a huge one is simply too large.
            return int(text) if text.isdigit() else None
    return None


async def _refuse(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    error = PayloadTooLarge(f"the request body is larger than {limit:,} bytes")
    response = problem(status_of(error), error.code, error.detail, {"Connection": "close"})
    await response(scope, receive, send)
