"""The owner's webhooks and alerts page: endpoints (added with their secret shown once,
enabled, disabled, deleted), each one's recent deliveries with their status and a button to
send one again, and the low-credit alert thresholds beside them.

Every action authorizes for governing the org (the owner, or an operator) and carries the
CSRF token; a refusal re-renders the page with the reason beside its form and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from creditpool.domain.amounts import format_credits, parse_credits
from creditpool.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from creditpool.domain.policies import SettingsChange
from creditpool.domain.roles import Permission
from creditpool.http_status import status_of
from creditpool.services import orgs, webhooks
from creditpool.services.auth import Grant
from creditpool.services.events import EVENT_TYPES
from creditpool.services.users import UserView
from creditpool.storage.unit_of_work import UnitOfWork
from creditpool.web import forms
from creditpool.web.pages_org import grant_for
from creditpool.web.session import Csrf, CurrentUser, PageUow, RedirectTo, flash, render

router = APIRouter(include_in_schema=False)

DELIVERIES_SHOWN = 10  # the newest of each endpoint; the API lists them all
ENDPOINTS_SHOWN = 50


def _page(
    request: Request,
    uow: UnitOfWork,
    user: UserView,
    org: str,
    *,
    errors: dict[str, str] | None = None,
    new_secret: tuple[str, str] | None = None,
    typed: FormData | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    view = orgs.get_org(uow, org)
    endpoints = webhooks.list_endpoints(uow, org, limit=ENDPOINTS_SHOWN)
    deliveries = {
        endpoint.id: webhooks.list_deliveries(uow, org, endpoint.id, limit=DELIVERIES_SHOWN)
        for endpoint in endpoints
    }
    # Why the last attempt failed, where no answer came (a timeout, a refused connection).
    attempts = webhooks.list_attempts(
        uow, org, [delivery.id for shown in deliveries.values() for delivery in shown]
    )
    last_errors = {key: tries[-1].error for key, tries in attempts.items() if tries}
    alerts = view.settings.alerts
    context: dict[str, Any] = {
        "org": view,
        "endpoints": endpoints,
        "deliveries": deliveries,
        "last_errors": last_errors,
        "event_types": EVENT_TYPES,
        "new_secret": new_secret,
        "errors": errors or {},
        "typed": {
            "url": str(typed.get("url") or "") if typed is not None else "",
            "description": str(typed.get("description") or "") if typed is not None else "",
            "events": set(typed.getlist("events")) if typed is not None else set(),
        },
        "alerts": {
            "low_balance": "" if alerts.low_balance is None else format_credits(alerts.low_balance),
            "days_left": "" if alerts.days_left is None else str(alerts.days_left),
        },
    }
    return render(request, "webhooks.html", context, user=user, status_code=status_code)


async def _act(
    request: Request,
    uow: UnitOfWork,
    user: UserView,
    org: str,
    section: str,
    run: Callable[[Grant, FormData], str],
) -> Response:
    """Authorize, run one action, and redirect with its confirmation or re-render with why
    not."""
    grant = grant_for(uow, user, org, Permission.GOVERN)
    form = await request.form()
    try:
        message = run(grant, form)
    except (InvalidInput, Conflict, NotFound, Forbidden) as error:
        return _page(
            request,
            uow,
            user,
            org,
            errors={section: error.detail},
            status_code=status_of(error),
        )
    flash(request, message)
    raise RedirectTo(f"/orgs/{org}/webhooks#{section}")


@router.get("/orgs/{org}/webhooks")
def webhooks_page(request: Request, org: str, uow: PageUow, user: CurrentUser) -> HTMLResponse:
    """The org's endpoints, their recent deliveries, and the alert thresholds."""
    grant_for(uow, user, org, Permission.GOVERN)
    return _page(request, uow, user, org)


@router.post("/orgs/{org}/webhooks", dependencies=[Csrf])
async def add_endpoint(request: Request, org: str, uow: PageUow, user: CurrentUser) -> Response:
    """A new endpoint; its secret is shown once, on the page that made it."""
    grant = grant_for(uow, user, org, Permission.GOVERN)
    form = await request.form()
    try:
        issued = webhooks.create_endpoint(
            uow,
            org,
            url=forms.text(form, "url"),
            events=forms.choices(form, "events"),
            description=forms.text(form, "description", required=False),
            actor=grant.actor,
        )
    except (InvalidInput, Conflict, NotFound) as error:
        return _page(
            request,
            uow,
            user,
            org,
            errors={"endpoints": error.detail},
            typed=form,
            status_code=status_of(error),
        )
    # Shown once, on this answer alone: never stored, not even in the session cookie.
    flash(request, "Endpoint added: copy its signing secret now, it is not shown again.")
    page = _page(request, uow, user, org, new_secret=(issued.endpoint.url, issued.secret))
    page.headers["Cache-Control"] = "no-store"
    return page


@router.post("/orgs/{org}/webhooks/{endpoint}/enabled", dependencies=[Csrf])
async def switch_endpoint(
    request: Request, org: str, endpoint: str, uow: PageUow, user: CurrentUser
) -> Response:
    """Enable or disable an endpoint."""

    def run(grant: Grant, form: FormData) -> str:
        enabled = forms.text(form, "action") == "enable"
        webhooks.update_endpoint(uow, org, endpoint, enabled=enabled)
        return "Endpoint enabled." if enabled else "Endpoint disabled: nothing is sent to it."

    return await _act(request, uow, user, org, "endpoints", run)


@router.post("/orgs/{org}/webhooks/{endpoint}/delete", dependencies=[Csrf])
async def delete_endpoint(
    request: Request, org: str, endpoint: str, uow: PageUow, user: CurrentUser
) -> Response:
    """Delete an endpoint: nothing more is sent to it."""

    def run(grant: Grant, form: FormData) -> str:
        webhooks.delete_endpoint(uow, org, endpoint)
        return "Endpoint deleted."

    return await _act(request, uow, user, org, "endpoints", run)


@router.post("/orgs/{org}/webhooks/{endpoint}/deliveries/{delivery}/resend", dependencies=[Csrf])
async def resend(
    request: Request, org: str, endpoint: str, delivery: str, uow: PageUow, user: CurrentUser
) -> Response:
    """Send a delivery's event again (the same webhook-id)."""

    def run(grant: Grant, form: FormData) -> str:
        webhooks.resend_delivery(uow, org, endpoint, delivery, actor=grant.actor)
        return "The event will be sent again in a moment."

    return await _act(request, uow, user, org, "endpoints", run)


@router.post("/orgs/{org}/alerts", dependencies=[Csrf])
async def save_alerts(request: Request, org: str, uow: PageUow, user: CurrentUser) -> Response:
    """The low-credit alert thresholds (an empty field turns one off)."""

    def run(grant: Grant, form: FormData) -> str:
        low = forms.text(form, "low_balance", required=False)
        days = forms.text(form, "days_left", required=False)
        if days and not (days.isdigit() and len(days) <= 5):
            raise InvalidInput("the days left is a whole number of days")
        change = SettingsChange(
            alert_low_balance=parse_credits(low) if low else None,
            alert_days_left=int(days) if days else None,
            alerts_set=frozenset({"low_balance", "days_left"}),
        )
        orgs.update_settings(uow, org, change, actor=grant.actor)
        return "Alerts saved."

    return await _act(request, uow, user, org, "alerts", run)
