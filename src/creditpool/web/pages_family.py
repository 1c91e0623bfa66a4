"""A parent's actions on its children, from its class manager: allot credits to a child's pool,
take them back, and (its owner) add a child org.

Like every action of the class manager, each is a POST with the session's CSRF token that
authorizes on the parent, calls one service and redirects back to the child's row with a short
confirmation; a refusal re-renders the page with the reason in that row, and nothing changed.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from creditpool.domain.amounts import format_credits
from creditpool.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from creditpool.domain.roles import Permission
from creditpool.http_status import status_of
from creditpool.services import families, orgs, users
from creditpool.services.auth import Grant
from creditpool.storage.unit_of_work import UnitOfWork
from creditpool.web import forms
from creditpool.web.family_view import ChildForm
from creditpool.web.pages_org import act, dashboard, grant_for
from creditpool.web.session import Csrf, CurrentUser, PageUow, RedirectTo, flash

router = APIRouter(include_in_schema=False)


@router.post("/orgs/{org}/children/{child}/allocations", dependencies=[Csrf])
async def allot_to_child(
    request: Request, org: str, child: str, uow: PageUow, user: CurrentUser
) -> Response:
    """Move credits from this org's pool to a child's pool."""

    def run(grant: Grant, form: FormData) -> str:
        moved = families.allot_to_child(
            uow, org, child, forms.required_amount(form), actor=grant.actor
        )
        return f"Allotted {format_credits(moved.amount)} credits to {_name(uow, child)}."

    return await act(request, uow, user, org, Permission.MANAGE, f"child-{child}", run)


@router.post("/orgs/{org}/children/{child}/revocations", dependencies=[Csrf])
async def take_back_from_child(
    request: Request, org: str, child: str, uow: PageUow, user: CurrentUser
) -> Response:
    """Move credits back from a child's pool; an empty amount takes all it has available."""

    def run(grant: Grant, form: FormData) -> str:
        moved = families.take_back_from_child(
            uow, org, child, forms.amount(form, required=False), actor=grant.actor
        )
        return f"Took back {format_credits(moved.amount)} credits from {_name(uow, child)}."

    return await act(request, uow, user, org, Permission.MANAGE, f"child-{child}", run)


@router.post("/orgs/{org}/children", dependencies=[Csrf])
async def add_child(request: Request, org: str, uow: PageUow, user: CurrentUser) -> Response:
    """Open an org below this one for a person who has signed up, its owner."""
    grant = grant_for(uow, user, org, Permission.GOVERN)
    form = await request.form()
    typed = ChildForm(_typed(form, "name"), _typed(form, "owner_email"))
    try:
        name = forms.text(form, "name")
        try:
            owner = users.find_user(uow, forms.text(form, "owner_email"))
        except NotFound as error:
            unknown = "no one has signed up with that e-mail: they sign up first"
            raise InvalidInput(unknown) from error
        # Anyone can sign up with any address: making an unconfirmed one the owner of a pool
        # this org funds takes a second click, as the operator's console asks.
        if not owner.email_verified and not forms.flag(form, "owner_unconfirmed_ok"):
            again = ChildForm(name, owner.email, unconfirmed=True)
            return dashboard(request, uow, user, org, grant, child_form=again)
        made = families.create_child(uow, org, name=name, owner_user_id=owner.id, actor=grant.actor)
    except (InvalidInput, Conflict, NotFound, Forbidden) as error:
        return dashboard(
            request,
            uow,
            user,
            org,
            grant,
            errors={"children": error.detail},
            status_code=status_of(error),
            child_form=typed,
        )
    flash(request, f"Added {made.name}, owned by {owner.email}.")
    raise RedirectTo(f"/orgs/{org}#children")


def _name(uow: UnitOfWork, org_id: str) -> str:
    """An org's name, for a confirmation."""
    return orgs.get_org(uow, org_id).name


def _typed(form: FormData, name: str) -> str:
    """A field as typed, to show again in a refused form (bounded: it is echoed back)."""
    value = form.get(name)
    return value.strip()[:320] if isinstance(value, str) else ""
