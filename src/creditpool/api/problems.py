"""Errors as application/problem+json (RFC 9457), from one place.

Domain errors carry their stable code, and creditpool.http_status their HTTP status (the pages
use the same map). Malformed requests are 422 `validation_error` (or `invalid_amount` when an
amount is at fault); a database out of reach is 503 `unavailable` with Retry-After; anything
unexpected is 500 with no internals in the body. Outside /api/ a domain error, or a path no
route knows, is answered by the `page_error` the application passes to `install` (an HTML page).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from creditpool.api.request_log import route_template
from creditpool.domain.errors import CreditpoolError, NotFound, RateLimited, Unavailable
from creditpool.http_status import status_of
from creditpool.storage.database import is_unavailable

logger = logging.getLogger("creditpool.api")

PROBLEM_JSON = "application/problem+json"
PageError = Callable[[Request, CreditpoolError], Response]
_TITLES = {
    400: "Bad request",
    401: "Unauthenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request too large",
    415: "Unsupported media type",
    422: "Unprocessable request",
    429: "Too many requests",
    500: "Internal error",
    503: "Service unavailable",
}
_UNAVAILABLE = "the database cannot be reached right now; try again shortly"


def problem(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """Return a problem+json response."""
    body = {
        "type": "about:blank",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "code": code,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _validation_detail(error: RequestValidationError) -> tuple[str, str]:
    issues = error.errors()
    code = (
        "invalid_amount"
        if any(i.get("type") == "invalid_amount" for i in issues)
        else ("validation_error")
    )
    parts = []
    for issue in issues[:5]:
        where = ".".join(str(part) for part in issue.get("loc", ()) if part != "body")
        parts.append(f"{where}: {issue.get('msg', 'invalid')}" if where else issue.get("msg", ""))
    return code, "; ".join(parts) or "the request is malformed"


def install(app: FastAPI, *, page_error: PageError | None = None) -> None:
    """Register the handlers that turn every error into problem+json; outside /api/, domain
    errors and unknown paths go to `page_error` when there is one."""

    def for_pages(request: Request) -> bool:
        return not request.url.path.startswith("/api/")

    @app.exception_handler(CreditpoolError)
    async def _domain(request: Request, error: CreditpoolError) -> Response:
        if page_error is not None and for_pages(request):
            return page_error(request, error)
        status = status_of(error)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if isinstance(error, RateLimited | Unavailable):
            headers = {"Retry-After": str(error.retry_after)}
        return problem(status, error.code, error.detail, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, error: RequestValidationError) -> JSONResponse:
        code, detail = _validation_detail(error)
        return problem(422, code, detail)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> Response:
        if page_error is not None and error.status_code == 404 and for_pages(request):
            return page_error(request, NotFound("no such page"))
        if error.status_code == 400:
            # FastAPI's own body parsing (a body that is not UTF-8, say): a malformed request.
            return problem(422, "validation_error", "the request body could not be read")
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthenticated"}.get(
            error.status_code, "http_error"
        )
        detail = (
            error.detail if isinstance(error.detail, str) else _TITLES.get(error.status_code, "")
        )
        return problem(error.status_code, code, detail, dict(error.headers or {}))

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def _database(request: Request, error: Exception) -> Response:
        # The database went away (a restart, a crash): "try again", not a crash of ours. A
        # write cut off mid-commit may have been applied; its idempotency key tells on retry.
        if is_unavailable(error):
            logger.warning(
                "database unavailable on %s %s: %s",
                request.method,
                route_template(request.scope),
                type(error).__name__,
            )
            return await _domain(request, Unavailable(_UNAVAILABLE))
        return await _unexpected(request, error)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> Response:
        if is_unavailable(error):
            # Raised outside the routes (in a middleware), where only this handler sees it.
            return await _domain(request, Unavailable(_UNAVAILABLE))
        # The route's template, never the path: paths carry invitation and reset tokens.
        logger.exception("unexpected error on %s %s", request.method, route_template(request.scope))
        return problem(500, "internal_error", "something went wrong on our side")
