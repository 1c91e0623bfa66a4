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

from creditpool.metrics import observe_request

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
            seconds = time.perf_counter() - started
            method, route = scope["method"], route_template(scope)
            observe_request(method, route, status, seconds)
            logger.info(
                "%s %s %s %d %.1fms",
                request_id,
                method,
                route,
                status,
                seconds * 1000,
                # The same, as fields of their own for a JSON log (CREDITPOOL_LOG_FORMAT=json).
                extra={
                    "request_id": request_id,
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 1),
                },
            )


def log_config(log_format: str = "text") -> dict[str, Any]:
    """Uvicorn's logging setup, plus ours: request lines to stdout, other messages to stderr;
    every line a JSON object when `log_format` is "json"."""
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
    if log_format == "json":
        config["formatters"]["json"] = {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        }
        for handler in config["handlers"].values():
            handler["formatter"] = "json"
    return config
