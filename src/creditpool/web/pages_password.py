"""Your account: the password (changed, or reset through a mailed link), a confirmed e-mail
address, and signing out of every browser."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from creditpool.domain.errors import Forbidden, InvalidInput, NotFound
from creditpool.http_status import status_of
from creditpool.services import sessions, user_links, users
from creditpool.web import forms
from creditpool.web.session import (
    AnonymousLimit,
    Csrf,
    CurrentUser,
    MaybeUser,
    PageUow,
    RedirectTo,
    config_of,
    current_session_id,
    failed_passwords,
    flash,
    render,
)

router = APIRouter(include_in_schema=False)
RESET_SENT = (
    "If an account exists for that address, a link to choose a new password is on its way. "
    "It works once, for an hour."
)


@router.get("/account")
def account_page(request: Request, user: CurrentUser) -> HTMLResponse:
    """Your name, address and whether it is confirmed; your password; your sessions."""
    return render(request, "account.html", {}, user=user)


@router.post("/account/password", dependencies=[Csrf])
async def change_password(request: Request, uow: PageUow, user: CurrentUser) -> Response:
    """Change your password; every other browser signed in as you is signed out."""
    form = await request.form()
    try:
        users.change_password(
            uow,
            user.id,
            current_password=forms.password(form, "current_password"),
            new_password=forms.password(form, "new_password"),
            keep_session=current_session_id(request, uow),
            password_limit=failed_passwords(request),
        )
    except (InvalidInput, Forbidden) as error:
        context = {"password_error": error.detail.capitalize() + "."}
        return render(request, "account.html", context, user=user, status_code=status_of(error))
    flash(request, "Your password is changed. Other browsers signed in as you are signed out.")
    raise RedirectTo("/account")


@router.post("/account/verify-email", dependencies=[Csrf])
def resend_verification(request: Request, uow: PageUow, user: CurrentUser) -> Response:
    """Mail a new link that confirms your address."""
    user_links.send_verification(uow, user.id, public_url=config_of(request).public_url)
    request.app.state.on_mail_queued()
    flash(request, f"A link to confirm your address is on its way to {user.email}.")
    raise RedirectTo("/account")


@router.post("/sign-out-everywhere", dependencies=[Csrf])
def sign_out_everywhere(request: Request, uow: PageUow, user: CurrentUser) -> Response:
    """End every session of yours, this browser's too."""
    sessions.end_all_sessions(uow, user.id)
    request.session.clear()
    flash(request, "You are signed out in every browser.")
    raise RedirectTo("/sign-in")


@router.get("/password-reset")
def password_reset_page(request: Request, user: MaybeUser) -> HTMLResponse:
    """Ask for a link to choose a new password."""
    return render(request, "password_reset.html", {}, user=user)


@router.post("/password-reset", dependencies=[AnonymousLimit, Csrf])
async def request_password_reset(request: Request, uow: PageUow, user: MaybeUser) -> Response:
    """Mail a reset link if the address has an account; answer the same either way."""
    form = await request.form()
    email = form.get("email")
    if isinstance(email, str) and email.strip():
        public_url = config_of(request).public_url
        user_links.request_password_reset(uow, email[:320], public_url=public_url)
        request.app.state.on_mail_queued()
    return render(request, "password_reset.html", {"sent": RESET_SENT}, user=user)


@router.get("/password-reset/{token}", dependencies=[AnonymousLimit])
def new_password_page(request: Request, token: str, uow: PageUow, user: MaybeUser) -> Response:
    """The form for a new password, if the link is live."""
    try:
        email = user_links.check_reset_link(uow, token)
    except NotFound:
        return render(request, "link_invalid.html", {}, user=user, status_code=404)
    context = {"token": token, "email": email}
    page = render(request, "password_new.html", context, user=user)
    page.headers["Cache-Control"] = "no-store"  # its address holds the secret link
    return page


@router.post("/password-reset/{token}", dependencies=[AnonymousLimit, Csrf])
async def set_new_password(request: Request, token: str, uow: PageUow, user: MaybeUser) -> Response:
    """Set the new password; every browser signed in as the person is signed out."""
    form = await request.form()
    try:
        user_links.reset_password(uow, token, password=forms.password(form))
    except NotFound:
        return render(request, "link_invalid.html", {}, user=user, status_code=404)
    except InvalidInput as error:
        email = user_links.check_reset_link(uow, token)
        context = {"token": token, "email": email, "error": error.detail.capitalize() + "."}
        return render(request, "password_new.html", context, user=user, status_code=422)
    request.session.clear()
    flash(request, "Your new password is set. Sign in with it.")
    raise RedirectTo("/sign-in")


@router.get("/verify-email/{token}", dependencies=[AnonymousLimit])
def verify_email(request: Request, token: str, uow: PageUow, user: MaybeUser) -> Response:
    """Confirm the address a link was mailed to."""
    try:
        user_links.verify_email(uow, token)
    except NotFound:
        return render(request, "link_invalid.html", {}, user=user, status_code=404)
    flash(request, "Thank you: your e-mail address is confirmed.")
    raise RedirectTo("/account" if user is not None else f"/sign-in?next={quote('/account')}")
