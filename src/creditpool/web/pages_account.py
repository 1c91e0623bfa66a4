"""Pages for anyone: sign up, sign in, joining an org, accepting an invitation, my credits."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from creditpool.domain.errors import (
    AlreadyExists,
    AlreadyMember,
    Conflict,
    InvalidInput,
    NotFound,
    Unauthenticated,
)
from creditpool.domain.model import InvitationStatus
from creditpool.http_status import status_of
from creditpool.services import (
    access,
    invitations,
    members,
    orgs,
    reports,
    sessions,
    user_links,
    users,
)
from creditpool.web import forms
from creditpool.web.session import (
    AnonymousLimit,
    Csrf,
    CurrentUser,
    MaybeUser,
    PageUow,
    RedirectTo,
    begin_session,
    config_of,
    current_session_id,
    failed_passwords,
    flash,
    meters_seats,
    render,
)

router = APIRouter(include_in_schema=False)
Next = Annotated[str, Query(max_length=500)]
HISTORY = 50  # the latest transfers shown on My credits, per org
Email = Annotated[str, Query(max_length=320)]  # filled in for the person (an invitation's)
TAKEN = "This address cannot be used to sign up. If it is yours, sign in or reset your password."


def _safe_next(target: str) -> str:
    # Only paths on this site: never an open redirect to another host ("//x", "/\\x").
    on_site = target.startswith("/") and not target.startswith(("//", "/\\"))
    return target if on_site else "/"


@router.get("/")
def home(request: Request, uow: PageUow, user: MaybeUser) -> Response:
    """Signed in: the orgs you belong to. Otherwise: sign in."""
    if user is None:
        raise RedirectTo("/sign-in")
    memberships = members.memberships_of(uow, user.id)
    managed = {m.org_id for m in memberships if access.may_manage(m.role)}
    context = {"memberships": memberships, "managed": managed}
    return render(request, "home.html", context, user=user)


@router.get("/sign-up")
def sign_up_page(
    request: Request, user: MaybeUser, next: Next = "/", email: Email = ""
) -> HTMLResponse:
    """The sign-up form."""
    context = {"next": _safe_next(next), "email": email}
    return render(request, "sign_up.html", context, user=user)


@router.post("/sign-up", dependencies=[AnonymousLimit, Csrf])
async def sign_up(request: Request, uow: PageUow, next: Next = "/") -> Response:
    """Create an account, mail a link that confirms its address, and sign in."""
    form = await request.form()
    public_url = config_of(request).public_url
    try:
        created = users.create_user(
            uow,
            email=forms.text(form, "email"),
            name=forms.text(form, "name"),
            password=forms.password(form),
            on_created=lambda user: user_links.mail_verification(uow, user, public_url),
        )
    except (InvalidInput, AlreadyExists) as error:
        # A taken address is named no more than the API's 409 must: no echo, no account hint.
        taken = isinstance(error, AlreadyExists)
        context = {
            "next": _safe_next(next),
            "error": TAKEN if taken else error.detail,
            "email": "" if taken else form.get("email"),
            "name": form.get("name"),
        }
        return render(request, "sign_up.html", context, status_code=status_of(error))
    request.app.state.on_mail_queued()
    begin_session(request, uow, created.id)
    code = forms.text(form, "join_code", required=False)
    if code:
        # Signing up from an invite link: one step, and the new person is in.
        return join(request, code, uow, created)
    then = _safe_next(next)
    invitation = then.removeprefix("/invitations/")
    if invitation != then:
        # Signing up from an e-mailed invitation: accept it at once when it is this person's.
        return accept_invitation(request, invitation, uow, created)
    flash(request, f"Welcome, {created.name}.")
    raise RedirectTo(then)


@router.get("/sign-in")
def sign_in_page(
    request: Request, user: MaybeUser, next: Next = "/", email: Email = ""
) -> HTMLResponse:
    """The sign-in form."""
    context = {"next": _safe_next(next), "email": email}
    return render(request, "sign_in.html", context, user=user)


@router.post("/sign-in", dependencies=[AnonymousLimit, Csrf])
async def sign_in(request: Request, uow: PageUow, next: Next = "/") -> Response:
    """Check the password and sign in (a locked-out address gets the 429 page)."""
    form = await request.form()
    try:
        user = users.authenticate(
            uow,
            email=forms.text(form, "email"),
            password=forms.password(form),
            password_limit=failed_passwords(request),
        )
    except (InvalidInput, Unauthenticated):
        context = {
            "next": _safe_next(next),
            "error": "Wrong e-mail or password.",
            "email": form.get("email"),
        }
        return render(request, "sign_in.html", context, status_code=401)
    begin_session(request, uow, user.id)
    raise RedirectTo(_safe_next(next))


@router.post("/sign-out", dependencies=[Csrf])
def sign_out(request: Request, uow: PageUow) -> Response:
    """End this browser's session on the server, so even a copy of its cookie is refused."""
    session_id = current_session_id(request, uow)
    if session_id is not None:
        sessions.end_session(uow, session_id)
    request.session.clear()
    flash(request, "Signed out.")
    raise RedirectTo("/sign-in")


@router.get("/join/{code}", dependencies=[AnonymousLimit])
def join_page(request: Request, code: str, uow: PageUow, user: MaybeUser) -> HTMLResponse:
    """What joining by this link means, and a button (or an account first)."""
    try:
        org_name = invitations.org_name_for_code(uow, code)
    except NotFound:
        return render(request, "link_invalid.html", {}, user=user, status_code=404)
    return render(request, "join.html", {"org_name": org_name, "code": code}, user=user)


@router.post("/join/{code}", dependencies=[AnonymousLimit, Csrf])
def join(request: Request, code: str, uow: PageUow, user: CurrentUser) -> Response:
    """Join the org as a member."""
    try:
        member = invitations.join_by_code(uow, code, user_id=user.id)
    except AlreadyMember as error:
        flash(request, "You are already a member of this org.")
        raise RedirectTo("/me") from error
    except NotFound:
        return render(request, "link_invalid.html", {}, user=user, status_code=404)
    flash(request, f"You joined. Welcome, {member.name}.")
    raise RedirectTo("/me")


@router.get("/invitations/{token}", dependencies=[AnonymousLimit])
def invitation_page(request: Request, token: str, uow: PageUow, user: MaybeUser) -> HTMLResponse:
    """An e-mailed invitation: who it is for, and a button to accept."""
    try:
        summary = invitations.describe_invitation(uow, token)
    except NotFound:
        summary = None
    if summary is None or summary.status is not InvitationStatus.PENDING:
        # Used, revoked or expired: like a link that never was, as the API answers.
        return render(request, "link_invalid.html", {}, user=user, status_code=404)
    context = {"summary": summary, "token": token}
    return render(request, "invitation.html", context, user=user)


@router.post("/invitations/{token}", dependencies=[AnonymousLimit, Csrf])
def accept_invitation(request: Request, token: str, uow: PageUow, user: CurrentUser) -> Response:
    """Accept the invitation as the signed-in user."""
    try:
        invitations.accept_invitation(uow, token, user_id=user.id)
    except (NotFound, Conflict) as error:
        try:
            summary = invitations.describe_invitation(uow, token)
        except NotFound:
            summary = None
        if summary is None or summary.status is not InvitationStatus.PENDING:
            return render(request, "link_invalid.html", {}, user=user, status_code=404)
        # Still pending (for another address, say): the invitation again, with why not.
        context = {"summary": summary, "token": token, "error": error.detail}
        return render(request, "invitation.html", context, user=user, status_code=status_of(error))
    flash(request, "Invitation accepted: welcome.")
    raise RedirectTo("/me")


@router.get("/me")
def my_credits(request: Request, uow: PageUow, user: CurrentUser) -> HTMLResponse:
    """Every org you belong to: your wallet, usage, history and whether your seat is live."""
    wallets = []
    for membership in members.memberships_of(uow, user.id):
        member = members.get_member(uow, membership.org_id, membership.member_id)
        history = reports.list_transfers(
            uow, membership.org_id, member_id=membership.member_id, limit=HISTORY
        )
        org = orgs.get_org(uow, membership.org_id)
        wallets.append(
            {
                "org": membership,
                "member": member,
                "history": history,
                "meters_seats": meters_seats(org),
                "settings": org.settings,  # what automatic allocation still gives, and when
            }
        )
    return render(request, "me.html", {"wallets": wallets, "history_size": HISTORY}, user=user)
