"""One log line per request, with nothing secret in it.

Our URLs carry secrets: invitation tokens (/invitations/{token}), invite codes (/join/{code}),
password-reset tokens. Uvicorn's access log writes the raw path (and the query string), so
`serve` turns it off and this middleware writes instead: a request id, the method, the route
*template* the request matched (/invitations/{token}, never the token), the status and the
duration. Never the query string, a header or the body. The id also goes back to the client in
`X-Request-ID`, so a person reporting a problem can name their request.
"""

from __future__ import annotations

import copy
import logging
import re
import secrets
import time
from typing import Any

from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.config import LOGGING_CONFIG

logger = logging.getLogger("creditpool.requests")
UNMATCHED = "(unmatched)"  # a path no route knows: its text could be anything, so not shown


def route_template(scope: Scope) -> str:
    """The template of the route a request matched (/invitations/{token}), never its path."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    pattern = getattr(route, "path_regex", None)
    if not isinstance(template, str) or not isinstance(pattern, re.Pattern):
        return UNMATCHED
    if isinstance(route, Mount):
        template += "/{path}"  # static files: their names are no secret, but keep it uniform
    # A route included under a prefix (/api/v1) knows only its own part of the path: find the
    # longest tail of the path that it matches; what is before it is the prefix, static text.
    path: str = scope["path"]
    for start, character in enumerate(path):
        if character == "/" and pattern.match(path[start:]):
            return path[:start] + template
    return UNMATCHED


class RequestLog:
    """ASGI middleware: log each HTTP request's id, method, route template, status, duration."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, then log its one line (status 500 if it raised)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500  # unless a response starts: an exception escaped every handler

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            logger.info(
                "%s %s %s %d %.1fms",
                request_id,
                scope["method"],
                route_template(scope),
                status,
                (time.perf_counter() - started) * 1000,
            )


def log_config() -> dict[str, Any]:
    """Uvicorn's logging setup, plus ours: request lines to stdout, other messages to stderr."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["handlers"]["requests"] = {
        "formatter": "default",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stdout",
    }
    config["loggers"]["creditpool"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    config["loggers"]["creditpool.requests"] = {
        "handlers": ["requests"],
        "level": "INFO",
        "propagate": False,
    }
    return config
