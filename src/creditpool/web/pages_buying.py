"""Buying credits in the pages: the owner asks the operator for credits, or pays by card
through Stripe Checkout, from the class manager; the operator approves or declines requests
from the console.

Paying by card goes through a page of ours with a link to Stripe's: the pages' Content
Security Policy lets forms post only to this server (`form-action 'self'`), which a form
redirected to Stripe would break. Stripe sends the owner back to /orgs/{org}/checkout/done or
/cancelled; the credits arrive when Stripe's signed event does (api/routes/purchases.py).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from creditpool.domain.amounts import format_credits
from creditpool.domain.errors import Conflict, InvalidInput, NotFound
from creditpool.domain.purchases import format_price
from creditpool.domain.roles import Permission
from creditpool.http_status import status_of
from creditpool.services import checkout, purchase_requests
from creditpool.services.auth import Grant
from creditpool.services.users import UserView
from creditpool.storage.unit_of_work import UnitOfWork
from creditpool.web import forms
from creditpool.web.pages_operator import console
from creditpool.web.pages_org import act, dashboard, grant_for
from creditpool.web.session import (
    Csrf,
    CurrentUser,
    Operator,
    PageUow,
    RedirectTo,
    flash,
    render,
)

router = APIRouter(include_in_schema=False)


@router.post("/orgs/{org}/purchase-requests", dependencies=[Csrf])
async def ask(request: Request, org: str, uow: PageUow, user: CurrentUser) -> Response:
    """The owner asks the operator for credits."""

    def run(grant: Grant, form: FormData) -> str:
        asked = purchase_requests.request_credits(
            uow,
            org,
            forms.required_amount(form),
            note=forms.text(form, "note", required=False) or None,
            actor=grant.actor,
        )
        return (
            f"Asked for {format_credits(asked.amount)} credits: "
            "you will be e-mailed when the operator decides."
        )

    return await act(request, uow, user, org, Permission.GOVERN, "buy", run)


@router.post("/orgs/{org}/checkout", dependencies=[Csrf])
async def pay_by_card(request: Request, org: str, uow: PageUow, user: CurrentUser) -> Response:
    """Open a Stripe Checkout page for whole credits; answer a page that links to it."""
    grant = grant_for(uow, user, org, Permission.GOVERN)
    form = await request.form()
    config = request.app.state.config
    settings = checkout.stripe_settings(config)
    back = f"{config.public_url}/orgs/{org}/checkout"
    try:
        amount = forms.required_amount(form)
        # Stripe is called over the network: off the event loop.
        opened = await run_in_threadpool(
            lambda: checkout.start_checkout(
                uow,
                org,
                amount,
                settings=settings,
                success_url=f"{back}/done",
                cancel_url=f"{back}/cancelled",
                actor=grant.actor,
            )
        )
    except (InvalidInput, Conflict) as error:
        return dashboard(
            request,
            uow,
            user,
            org,
            grant,
            errors={"buy": error.detail},
            status_code=status_of(error),
        )
    credits = opened.amount // 1_000_000
    context = {
        "org_id": org,
        "url": opened.url,
        "credits": format_credits(opened.amount),
        "total": format_price(credits * settings.unit_price, settings.currency),
    }
    page = render(request, "checkout.html", context, user=user)
    page.headers["Cache-Control"] = "no-store"
    return page


@router.get("/orgs/{org}/checkout/done")
def checkout_done(request: Request, org: str, uow: PageUow, user: CurrentUser) -> Response:
    """Where Stripe sends the owner back after paying."""
    grant_for(uow, user, org, Permission.GOVERN)
    flash(request, "Payment made: the credits reach the pool as soon as Stripe confirms it.")
    raise RedirectTo(f"/orgs/{org}#buy")


@router.get("/orgs/{org}/checkout/cancelled")
def checkout_cancelled(request: Request, org: str, uow: PageUow, user: CurrentUser) -> Response:
    """Where Stripe sends the owner back after giving up."""
    grant_for(uow, user, org, Permission.GOVERN)
    flash(request, "Payment cancelled: nothing was charged.")
    raise RedirectTo(f"/orgs/{org}#buy")


@router.post("/operator/orgs/{org}/purchase-requests/{request_id}/approve", dependencies=[Csrf])
async def approve(
    request: Request, org: str, request_id: str, uow: PageUow, user: Operator
) -> Response:
    """The operator approves a request: its credits go into the org's pool, once."""
    form = await request.form()
    try:
        approved = purchase_requests.approve_request(
            uow,
            org,
            request_id,
            reference=forms.text(form, "reference", required=False) or None,
            actor=f"user:{user.id}",
            public_url=request.app.state.config.public_url,
        )
    except (InvalidInput, Conflict, NotFound) as error:
        return _refused(request, uow, user, error)
    flash(request, f"Approved: {format_credits(approved.amount)} credits are in the pool.")
    raise RedirectTo("/operator#requests")


@router.post("/operator/orgs/{org}/purchase-requests/{request_id}/decline", dependencies=[Csrf])
async def decline(
    request: Request, org: str, request_id: str, uow: PageUow, user: Operator
) -> Response:
    """The operator declines a request, with a reason the owner is e-mailed."""
    form = await request.form()
    try:
        declined = purchase_requests.decline_request(
            uow,
            org,
            request_id,
            reason=forms.text(form, "reason", required=False) or None,
            actor=f"user:{user.id}",
            public_url=request.app.state.config.public_url,
        )
    except (InvalidInput, Conflict, NotFound) as error:
        return _refused(request, uow, user, error)
    flash(request, f"Declined the request for {format_credits(declined.amount)} credits.")
    raise RedirectTo("/operator#requests")


def _refused(
    request: Request, uow: UnitOfWork, user: UserView, error: InvalidInput | Conflict | NotFound
) -> HTMLResponse:
    return console(
        request, uow, user, errors={"requests": error.detail}, status_code=status_of(error)
    )
