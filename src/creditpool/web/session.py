"""Who is signed in, CSRF protection, flash messages and rendering, for the pages.

The cookie is signed (Starlette's SessionMiddleware) and holds a CSRF token, pending flash
messages and, once signed in, `<session id>.<secret>` of a server-side session
(services.sessions): a page trusts it only while that session is live, so signing out, "sign out
everywhere" or a password change refuses the cookie even if it was copied. Every form carries
the CSRF token; `check_csrf` refuses a POST without the right one before anything runs.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from creditpool.config import Config
from creditpool.domain.amounts import format_credits
from creditpool.domain.errors import Forbidden
from creditpool.domain.periods import COMMON_TIMEZONES, zone_of
from creditpool.services import rate_limits, sessions
from creditpool.services.auth import Principal
from creditpool.services.rate_limits import Limits
from creditpool.services.users import UserView
from creditpool.services.views import OrgView
from creditpool.storage.unit_of_work import UnitOfWork

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.filters["credits"] = format_credits
templates.env.filters["urlquote"] = lambda text: quote(str(text), safe="")
# Why a seat is not live, in words (the codes are the API's).
REASONS = {
    "removed": "removed from the org",
    "external": "external seat",
    "unlicensed": "unlicensed seat",
    "paused": "org paused",
    "no_credits": "no credits left in the pool",
}
templates.env.filters["reason"] = lambda code: REASONS.get(str(code), str(code))


def local_time(instant: datetime, zone: str) -> str:
    """An instant as the org's clocks show it: "Monday 30 March 2026, 00:00"."""
    local = instant.astimezone(zone_of(zone))
    return f"{local:%A} {local.day} {local:%B %Y, %H:%M}"


templates.env.filters["local_time"] = local_time
# The time zones the settings page offers first (any IANA name may be typed).
templates.env.globals["common_timezones"] = COMMON_TIMEZONES


class RedirectTo(Exception):
    """Raised to answer with a redirect (303 See Other) to `url`."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


class CsrfRefused(Exception):
    """A form arrived without this session's CSRF token."""


def page_uow(request: Request) -> UnitOfWork:
    """A unit of work for this page."""
    return UnitOfWork(request.app.state.session_factory, request.app.state.clock)


PageUow = Annotated[UnitOfWork, Depends(page_uow)]


SESSION_KEY = "sid"  # where the cookie keeps "<session id>.<secret>"


def config_of(request: Request) -> Config:
    """The server's configuration."""
    config: Config = request.app.state.config
    return config


def live_session(request: Request, uow: PageUow) -> sessions.SignedIn | None:
    """This browser's live session and its user, or None (and the cookie forgets a dead one)."""
    # Several dependencies of one request ask: read the session once.
    cached: tuple[sessions.SignedIn | None] | None = getattr(request.state, "signed_in", None)
    if cached is not None:
        return cached[0]
    token = request.session.get(SESSION_KEY)
    live = None
    if isinstance(token, str):
        live = sessions.resume_session(uow, token, idle=config_of(request).session_idle)
        if live is None:
            request.session.pop(SESSION_KEY, None)
    request.state.signed_in = (live,)
    return live


def signed_in(request: Request, uow: PageUow) -> UserView | None:
    """The signed-in user, or None."""
    live = live_session(request, uow)
    return None if live is None else live.user


MaybeUser = Annotated[UserView | None, Depends(signed_in)]


def begin_session(request: Request, uow: UnitOfWork, user_id: str) -> None:
    """Sign this browser in as the user: a new cookie session over a new server session."""
    token = sessions.start_session(uow, user_id, lifetime=config_of(request).session_lifetime)
    request.session.clear()  # a new session for a new sign-in: no CSRF token or flash carried
    request.session[SESSION_KEY] = token
    request.state.signed_in = None  # read it again if asked


def current_session_id(request: Request, uow: PageUow) -> str | None:
    """The id of this browser's live session, or None."""
    live = live_session(request, uow)
    return None if live is None else live.session_id


def limits_of(request: Request) -> Limits:
    """The rate limits the server applies."""
    return Limits.from_config(config_of(request))


def _client_address(request: Request) -> str:
    # Behind a trusted proxy, the address it names (`serve --forwarded-allow-ips`).
    return request.client.host if request.client is not None else "unknown"


def failed_passwords(request: Request) -> rate_limits.FailedPasswords | None:
    """The limit on this browser's failed password checks, or None when limits are off."""
    limit = limits_of(request).failed_passwords
    if limit is None:
        return None
    host = _client_address(request)
    return rate_limits.FailedPasswords(limit, host)


def anonymous_limit(request: Request) -> None:
    """Count a request from its client address, or a signed-in person's as their own (a whole
    class behind one school address may join in the same minute); RateLimited (a 429 page)
    over the limit."""
    limit = limits_of(request).anonymous
    if limit is None:
        return
    uow = page_uow(request)
    live = live_session(request, uow)
    if live is not None:
        bucket = rate_limits.bucket_of("person", live.user.id)
    else:
        host = _client_address(request)
        bucket = rate_limits.bucket_of("anonymous", host)
    rate_limits.hit(uow, bucket, limit)


AnonymousLimit = Depends(anonymous_limit)


def require_user(request: Request, user: MaybeUser) -> UserView:
    """The signed-in user; otherwise, off to sign in and back here after."""
    if user is None:
        raise RedirectTo(f"/sign-in?next={quote(request.url.path, safe='')}")
    return user


CurrentUser = Annotated[UserView, Depends(require_user)]


def principal_of(user: UserView) -> Principal:
    """The caller a signed-in user is, for services.auth.authorize."""
    return Principal(actor=f"user:{user.id}", user_id=user.id, operator=user.is_operator)


def require_operator(user: CurrentUser) -> UserView:
    """The signed-in user, if an operator."""
    if not user.is_operator:
        raise Forbidden("only an operator can open this page")
    return user


Operator = Annotated[UserView, Depends(require_operator)]


def csrf_token(request: Request) -> str:
    """This session's CSRF token, made on first use."""
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


async def check_csrf(request: Request) -> None:
    """Refuse a POST whose form lacks this session's CSRF token."""
    form = await request.form()
    sent = form.get("csrf_token")
    expected = request.session.get("csrf")
    if not isinstance(sent, str) or not isinstance(expected, str):
        raise CsrfRefused
    if not hmac.compare_digest(sent, expected):
        raise CsrfRefused


Csrf = Depends(check_csrf)


def flash(request: Request, message: str, kind: str = "ok") -> None:
    """Show `message` on the next page."""
    request.session.setdefault("flashes", []).append([kind, message])


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    user: UserView | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """Render a page with the context every page needs."""
    flashes = request.session.pop("flashes", [])
    full = {
        "user": user,
        "csrf_token": csrf_token(request),
        "flashes": flashes,
        **(context or {}),
    }
    return templates.TemplateResponse(request, template, full, status_code=status_code)


def meters_seats(org: OrgView) -> bool:
    """Whether seats cost this org anything (or ever did): else its burn figures are noise."""
    rates = org.settings.seat_rates
    return bool(rates.licensed or rates.unlicensed or rates.external or org.balance.metered)
