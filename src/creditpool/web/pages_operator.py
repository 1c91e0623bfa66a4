"""The operator's console: every org, opening one, recording a purchase."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from creditpool.domain.amounts import format_credits
from creditpool.domain.errors import Conflict, InvalidInput, NotFound
from creditpool.domain.metering import USUAL_SEAT_RATES
from creditpool.domain.policies import SettingsChange
from creditpool.services import credits as credit_service
from creditpool.services import orgs, users
from creditpool.services.users import UserView
from creditpool.services.views import OrgView
from creditpool.storage.unit_of_work import UnitOfWork
from creditpool.web import forms
from creditpool.web.session import Csrf, Operator, PageUow, RedirectTo, flash, render

router = APIRouter(include_in_schema=False)
PAGE = 500


def console(
    request: Request,
    uow: UnitOfWork,
    user: UserView,
    *,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """Render the console."""
    everything: list[OrgView] = []
    while True:
        batch = orgs.list_orgs(uow, after=everything[-1].id if everything else None, limit=PAGE)
        everything += batch
        if len(batch) < PAGE:
            break
    return render(
        request,
        "operator.html",
        {"orgs": everything, "errors": errors or {}},
        user=user,
        status_code=status_code,
    )


@router.get("/operator")
def operator_page(request: Request, uow: PageUow, user: Operator) -> HTMLResponse:
    """All orgs with their pools."""
    return console(request, uow, user)


@router.post("/operator/orgs", dependencies=[Csrf])
async def create_org(request: Request, uow: PageUow, user: Operator) -> Response:
    """Open an org for an existing user, its owner."""
    form = await request.form()
    try:
        owner = users.find_user(uow, forms.text(form, "owner_email"))
        rates = None
        if forms.text(form, "metering", required=False) == "school":
            usual = USUAL_SEAT_RATES
            rates = SettingsChange(
                rate_licensed=usual.licensed,
                rate_unlicensed=usual.unlicensed,
                rate_external=usual.external,
            )
        created = orgs.create_org(
            uow,
            name=forms.text(form, "name"),
            owner_user_id=owner.id,
            settings=rates,
            actor=f"user:{user.id}",
        )
    except NotFound:
        return console(
            request,
            uow,
            user,
            errors={"create": "No user has that e-mail: they sign up first."},
            status_code=422,
        )
    except (InvalidInput, Conflict) as error:
        return console(request, uow, user, errors={"create": error.detail}, status_code=422)
    flash(request, f"Opened {created.name}.")
    raise RedirectTo("/operator")


@router.post("/operator/orgs/{org}/purchases", dependencies=[Csrf])
async def purchase(request: Request, org: str, uow: PageUow, user: Operator) -> Response:
    """Credits bought by the org."""
    form = await request.form()
    try:
        bought = credit_service.record_purchase(
            uow,
            org,
            forms.required_amount(form),
            reference=forms.text(form, "reference", required=False) or None,
            actor=f"user:{user.id}",
        )
    except (InvalidInput, Conflict) as error:
        return console(request, uow, user, errors={org: error.detail}, status_code=422)
    flash(request, f"Recorded a purchase of {format_credits(bought.amount)} credits.")
    raise RedirectTo("/operator")
