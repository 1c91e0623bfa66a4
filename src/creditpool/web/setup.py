"""Adding the pages to the application: sessions, static files, routes, HTML errors."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from creditpool.config import Config
from creditpool.domain.errors import CreditpoolError, RateLimited, Unavailable
from creditpool.http_status import status_of
from creditpool.routing import add_routes
from creditpool.web import (
    pages_account,
    pages_buying,
    pages_family,
    pages_ledger,
    pages_operator,
    pages_org,
    pages_owner,
    pages_password,
    pages_tokens,
    pages_webhooks,
)
from creditpool.web.session import CsrfRefused, RedirectTo, page_uow, render, signed_in, templates

CONTENT_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
DOCS_POLICY = "frame-ancestors 'none'"
HSTS = "max-age=31536000"
# What an error page says, by status; any other status shows the error's own detail. A page
# never tells a stranger more than "nothing here" about another org's things.
_ERROR_PAGES = {
    403: ("Not allowed", "Your role in this org does not let you open this page."),
    404: ("Not found", "There is nothing here, or it belongs to an org that is not yours."),
}


def install_web(app: FastAPI, config: Config, *, secret_key: str) -> None:
    """Serve the pages from `app`, beside the API; `secret_key` signs the session cookies."""
    docs_path = app.docs_url or "/docs"
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret_key,
        session_cookie="creditpool_session",
        # The server-side session decides when a sign-in ends (services.sessions); the cookie
        # lasts as long as the longest of them, and carries the CSRF token meanwhile.
        max_age=int(config.session_lifetime.total_seconds()),
        same_site="lax",
        https_only=config.https,
    )
    app.add_middleware(SecurityHeaders, docs_path=docs_path, hsts=config.https)

    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    add_routes(
        app,
        pages_account.router,
        pages_org.router,
        pages_family.router,
        pages_owner.router,
        pages_ledger.router,
        pages_operator.router,
        pages_tokens.router,
        pages_password.router,
        pages_buying.router,
        pages_webhooks.router,
    )

    @app.exception_handler(RedirectTo)
    async def _redirect(_: Request, redirect: RedirectTo) -> Response:
        return RedirectResponse(redirect.url, status_code=303)

    @app.exception_handler(CsrfRefused)
    async def _csrf(request: Request, _: CsrfRefused) -> Response:
        return render(
            request,
            "error.html",
            {
                "title": "This form has expired",
                "message": "Go back, reload the page and try again.",
            },
            status_code=403,
        )


class SecurityHeaders:
    """ASGI middleware: the headers that keep our pages from being framed, scripted by others,
    sniffed or leaking links (each set only where the answer has none of its own)."""

    def __init__(self, app: ASGIApp, *, docs_path: str, hsts: bool) -> None:
        self.app = app
        self.docs_path = docs_path
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; add the headers to its answer."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # FastAPI's interactive docs bring their own inline script and a CDN's files.
        policy = DOCS_POLICY if scope["path"].startswith(self.docs_path) else CONTENT_POLICY

        async def send_guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                # No page of ours may be framed by another site (clickjacking), and invitation
                # links in our URLs never leak to another site through the Referer header.
                headers.setdefault("X-Frame-Options", "DENY")
                # Only our own files may script or style a page: injected markup cannot run.
                headers.setdefault("Content-Security-Policy", policy)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "same-origin")
                if self.hsts:
                    # Browsers then refuse plain http to us for a year, even a typed address.
                    headers.setdefault("Strict-Transport-Security", HSTS)
            await send(message)

        await self.app(scope, receive, send_guarded)


def html_error(request: Request, error: CreditpoolError) -> HTMLResponse:
    """An error page for the pages, with the status the API would answer (http_status)."""
    if isinstance(error, Unavailable):
        return _unavailable_page(request, error)
    if isinstance(error, RateLimited):
        return _rate_limited_page(request, error)
    user = signed_in(request, page_uow(request))
    status = status_of(error)
    title, message = _ERROR_PAGES.get(status, ("That did not work", error.detail))
    return render(
        request, "error.html", {"title": title, "message": message}, user=user, status_code=status
    )


def _unavailable_page(request: Request, error: Unavailable) -> HTMLResponse:
    # The database is what failed: look up no user and touch no session, just say so.
    context: dict[str, object] = {
        "user": None,
        "csrf_token": "",
        "flashes": [],
        "title": "Try again in a moment",
        "message": "creditpool cannot reach its database right now. Wait a moment, then check "
        "whether what you sent went through before you send it again.",
    }
    return templates.TemplateResponse(
        request,
        "error.html",
        context,
        status_code=503,
        headers={"Retry-After": str(error.retry_after)},
    )


def _rate_limited_page(request: Request, error: RateLimited) -> HTMLResponse:
    # Counting the request was a write of its own: look up no session, just say when to retry.
    minutes, seconds = divmod(error.retry_after, 60)
    wait = f"{minutes} minute{'s' if minutes != 1 else ''}" if minutes else ""
    if seconds or not minutes:
        wait += f"{' ' if wait else ''}{seconds} second{'s' if seconds != 1 else ''}"
    retry_at = request.app.state.clock.now() + timedelta(seconds=error.retry_after)
    response = render(
        request,
        "rate_limited.html",
        {"wait": wait, "retry_at": f"{retry_at:%H:%M:%S}"},
        status_code=429,
    )
    response.headers["Retry-After"] = str(error.retry_after)
    return response
