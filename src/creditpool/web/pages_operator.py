"""The operator's console: every org, opening one, recording a purchase; the operators and
the operator keys, each taken back with one button.

Opening an org for an owner whose e-mail address is not confirmed takes a second click: anyone
can sign up with any address, so the operator confirms they know who that owner is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from creditpool.domain.amounts import format_credits
from creditpool.domain.errors import Conflict, InvalidInput, NotFound
from creditpool.domain.metering import USUAL_SEAT_RATES
from creditpool.domain.policies import SettingsChange
from creditpool.http_status import status_of
from creditpool.services import credits as credit_service
from creditpool.services import operators, org_tree, orgs, purchase_requests, users
from creditpool.services.users import UserView
from creditpool.storage.unit_of_work import UnitOfWork
from creditpool.web import forms
from creditpool.web.session import Csrf, Operator, PageUow, RedirectTo, flash, render

router = APIRouter(include_in_schema=False)
PAGE = 100  # orgs a page of the console shows; the next page starts after the last
SHOWN = 200  # operators and operator keys shown; the command line lists them all


def console(
    request: Request,
    uow: UnitOfWork,
    user: UserView,
    *,
    errors: dict[str, str] | None = None,
    unconfirmed: UnconfirmedOwner | None = None,
    status_code: int = 200,
    after: str | None = None,
) -> HTMLResponse:
    """Render the console; `unconfirmed` asks for the second click that opens an org anyway.

    Every list is bounded: a page of top orgs (from `after`, by id) with their families, and
    the first SHOWN operators and keys, each saying when there are more.
    """
    tree = org_tree.org_tree(uow, after=after, limit=PAGE)
    people = operators.list_operators(uow, limit=SHOWN + 1)
    keys = operators.list_operator_keys(uow, limit=SHOWN + 1)
    context = {
        "pending_requests": purchase_requests.list_pending_requests(uow, limit=SHOWN),
        "pending_count": purchase_requests.count_pending_requests(uow),
        # Each top org with its children (and theirs) indented beneath it.
        "org_rows": tree.rows,
        "descendants_left_out": tree.descendants_left_out,
        "org_count": orgs.count_orgs(uow),
        "next_orgs": tree.next_after,
        "errors": errors or {},
        "unconfirmed": unconfirmed,
        "operators": people[:SHOWN],
        "more_operators": len(people) > SHOWN,
        "operator_keys": keys[:SHOWN],
        "more_keys": len(keys) > SHOWN,
    }
    return render(request, "operator.html", context, user=user, status_code=status_code)


@dataclass(frozen=True)
class UnconfirmedOwner:
    """An org about to be opened for an owner whose e-mail is not confirmed: the form again."""

    name: str
    owner_email: str
    metering: str


@router.get("/operator")
def operator_page(
    request: Request,
    uow: PageUow,
    user: Operator,
    after: Annotated[str | None, Query(max_length=64)] = None,
) -> HTMLResponse:
    """The orgs with their pools, a page at a time."""
    return console(request, uow, user, after=after)


@router.post("/operator/orgs", dependencies=[Csrf])
async def create_org(request: Request, uow: PageUow, user: Operator) -> Response:
    """Open an org for an existing user, its owner."""
    form = await request.form()
    try:
        owner = users.find_user(uow, forms.text(form, "owner_email"))
        metering = forms.text(form, "metering", required=False)
        if not owner.email_verified and not forms.flag(form, "owner_unconfirmed_ok"):
            again = UnconfirmedOwner(forms.text(form, "name"), owner.email, metering)
            return console(request, uow, user, unconfirmed=again)
        rates = None
        if metering == "school":
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
        return console(
            request, uow, user, errors={"create": error.detail}, status_code=status_of(error)
        )
    confirmed = "confirmed" if owner.email_verified else "not confirmed"
    flash(request, f"Opened {created.name} for {owner.email} (e-mail {confirmed}).")
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
            priority=forms.priority(form),
            last_day=forms.day(form, "expires_after"),
        )
    except (InvalidInput, Conflict) as error:
        return console(request, uow, user, errors={org: error.detail}, status_code=status_of(error))
    flash(request, f"Recorded a purchase of {format_credits(bought.amount)} credits.")
    raise RedirectTo("/operator")


@router.post("/operator/keys/{key}/revoke", dependencies=[Csrf])
async def revoke_key(request: Request, key: str, uow: PageUow, user: Operator) -> Response:
    """The operator key stops working at once."""
    try:
        revoked = operators.revoke_operator_key(uow, key)
    except NotFound as error:
        return console(
            request, uow, user, errors={"keys": error.detail}, status_code=status_of(error)
        )
    flash(request, f"Operator key {revoked.name} revoked: it no longer works.")
    raise RedirectTo("/operator")


@router.post("/operator/operators/revoke", dependencies=[Csrf])
async def revoke_operator(request: Request, uow: PageUow, user: Operator) -> Response:
    """Take a person's operator powers back; never one's own."""
    form = await request.form()
    try:
        taken = operators.revoke_operator(uow, forms.text(form, "email"), by_user_id=user.id)
    except (InvalidInput, NotFound, Conflict) as error:
        return console(
            request, uow, user, errors={"operators": error.detail}, status_code=status_of(error)
        )
    flash(request, f"{taken.email} is no longer an operator.")
    raise RedirectTo("/operator")
