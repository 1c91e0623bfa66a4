"""The owner's part of the class manager: settings, pause and resume, API keys, the reset.

Each action authorizes for governing the org (the owner, or an operator); a refusal
re-renders the class manager with the reason beside the form, as in pages_org.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from creditpool.domain.amounts import format_credits
from creditpool.domain.errors import Conflict, InvalidInput, PreviewOutdated
from creditpool.domain.policies import SettingsChange
from creditpool.domain.roles import Permission
from creditpool.http_status import status_of
from creditpool.services import auth, orgs, resets
from creditpool.services.auth import Grant
from creditpool.services.users import UserView
from creditpool.storage.unit_of_work import UnitOfWork
from creditpool.web import forms
from creditpool.web.pages_org import act, dashboard, grant_for
from creditpool.web.session import Csrf, CurrentUser, PageUow, RedirectTo, flash, render

router = APIRouter(include_in_schema=False)


@router.post("/orgs/{org}/settings", dependencies=[Csrf])
async def save_settings(request: Request, org: str, uow: PageUow, user: CurrentUser) -> Response:
    """Returnable, automatic allocation (its period, reclaim and time zone), seat rates."""

    def run(grant: Grant, form: FormData) -> str:
        # A form without the period's fields (an older page still open) leaves them as they are.
        change = SettingsChange(
            returnable=forms.flag(form, "returnable"),
            auto_enabled=forms.flag(form, "auto_enabled"),
            auto_bundle=forms.policy_amount(form, "bundle"),
            auto_max_per_member=forms.policy_amount(form, "max_per_member"),
            auto_period=forms.period(form),
            period_set="period" in form,
            auto_reclaim=forms.flag(form, "reclaim") if "period" in form else None,
            timezone=forms.text(form, "timezone") if "timezone" in form else None,
            rate_licensed=forms.policy_amount(form, "rate_licensed"),
            rate_unlicensed=forms.policy_amount(form, "rate_unlicensed"),
            rate_external=forms.policy_amount(form, "rate_external"),
        )
        orgs.update_settings(uow, org, change, actor=grant.actor)
        return "Settings saved."

    return await act(request, uow, user, org, Permission.GOVERN, "settings", run)


@router.post("/orgs/{org}/pause", dependencies=[Csrf])
async def pause(request: Request, org: str, uow: PageUow, user: CurrentUser) -> Response:
    """Pause or resume the org."""

    def run(grant: Grant, form: FormData) -> str:
        paused = forms.text(form, "action") == "pause"
        orgs.set_paused(uow, org, paused=paused, actor=grant.actor)
        return "Paused: nothing burns and usage is refused." if paused else "Resumed."

    return await act(request, uow, user, org, Permission.GOVERN, "settings", run)


@router.post("/orgs/{org}/api-keys", dependencies=[Csrf])
async def create_key(request: Request, org: str, uow: PageUow, user: CurrentUser) -> Response:
    """A key for the vendor's product; shown once, on the page that made it."""
    grant = grant_for(uow, user, org, Permission.GOVERN)
    form = await request.form()
    try:
        issued = auth.create_api_key(
            uow, org, name=forms.text(form, "name"), scopes=["usage"], actor=grant.actor
        )
    except (InvalidInput, Conflict) as error:
        return dashboard(
            request,
            uow,
            user,
            org,
            grant,
            errors={"keys": error.detail},
            status_code=status_of(error),
        )
    # Shown once, on this answer alone: never stored, not even in the session cookie.
    flash(request, "Key made: copy it now, it is not shown again.")
    page = dashboard(request, uow, user, org, grant, new_key=issued.secret)
    page.headers["Cache-Control"] = "no-store"
    return page


@router.post("/orgs/{org}/api-keys/{key}/revoke", dependencies=[Csrf])
async def revoke_key(
    request: Request, org: str, key: str, uow: PageUow, user: CurrentUser
) -> Response:
    """The key stops working at once."""

    def run(grant: Grant, form: FormData) -> str:
        auth.revoke_api_key(uow, org, key)
        return "Key revoked."

    return await act(request, uow, user, org, Permission.GOVERN, "keys", run)


def _reset_page(
    request: Request,
    uow: UnitOfWork,
    user: UserView,
    org: str,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    context = {
        "org": orgs.get_org(uow, org),
        "preview": resets.preview_reset(uow, org),
        "error": error,
    }
    return render(request, "reset.html", context, user=user, status_code=status_code)


@router.get("/orgs/{org}/reset")
def reset_page(request: Request, org: str, uow: PageUow, user: CurrentUser) -> HTMLResponse:
    """What a reset would do, and the button that does it."""
    grant_for(uow, user, org, Permission.GOVERN)
    return _reset_page(request, uow, user, org)


@router.post("/orgs/{org}/reset", dependencies=[Csrf])
async def reset(request: Request, org: str, uow: PageUow, user: CurrentUser) -> Response:
    """Reset the class, exactly as the preview the owner confirmed said, or not at all."""
    grant = grant_for(uow, user, org, Permission.GOVERN)
    form = await request.form()
    try:
        expected = resets.ResetResult(
            removed=int(forms.text(form, "removed")),
            revoked=int(forms.text(form, "revoked")),
            invitations_revoked=int(forms.text(form, "invitations")),
            invite_code=forms.text(form, "code"),
        )
    except (ValueError, InvalidInput):
        message = "Confirm the reset from this page, which shows what it will do."
        return _reset_page(request, uow, user, org, error=message, status_code=422)
    try:
        done = resets.reset_org(uow, org, actor=grant.actor, expected=expected)
    except PreviewOutdated:
        message = "The class changed since you looked. This is what a reset would do now."
        return _reset_page(request, uow, user, org, error=message, status_code=409)
    flash(
        request,
        f"Class reset: {done.removed} removed, {format_credits(done.revoked)} credits back in "
        f"the pool, {done.invitations_revoked} invitation(s) revoked, new invite link made.",
    )
    raise RedirectTo(f"/orgs/{org}")
