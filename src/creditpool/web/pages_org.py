"""The class manager: one page per org for its owner and managers, and the actions on it.

Each action is a POST with the session's CSRF token; it authorizes through services.auth,
calls one service, and redirects back with a short confirmation. A refusal re-renders the
page with the reason next to the form it came from, and nothing has changed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from creditpool.domain.amounts import format_credits
from creditpool.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from creditpool.domain.model import InvitationStatus, MemberStatus, Role, Seat
from creditpool.domain.policies import OrgSettings
from creditpool.domain.roles import Permission
from creditpool.http_status import status_of
from creditpool.services import access, auth, groups, invitations, members, orgs, reports, roster
from creditpool.services import credits as credit_service
from creditpool.services.auth import Grant
from creditpool.services.roster import RosterFilter
from creditpool.services.targets import Target
from creditpool.services.users import UserView
from creditpool.services.views import GroupView
from creditpool.storage.unit_of_work import UnitOfWork
from creditpool.web import forms
from creditpool.web.buying_view import buying_panel
from creditpool.web.chart import pool_chart
from creditpool.web.family_view import ChildForm, family_panel
from creditpool.web.lots_view import lots_panel
from creditpool.web.roster_view import PER_PAGE, RosterView, read_view
from creditpool.web.session import (
    Csrf,
    CurrentUser,
    PageUow,
    RedirectTo,
    flash,
    meters_seats,
    principal_of,
    render,
)

router = APIRouter(include_in_schema=False)
SHOWN = 200  # invitations, groups and keys the page lists at most; it says how many more
REMOVED_SHOWN = 20  # removed members listed under the table; the status filter shows them all


def grant_for(uow: UnitOfWork, user: UserView, org: str, permission: Permission) -> Grant:
    """Authorize the signed-in user on the org (NotFound, Forbidden) or raise."""
    return auth.authorize(uow, principal_of(user), org, permission)


def dashboard(
    request: Request,
    uow: UnitOfWork,
    user: UserView,
    org: str,
    grant: Grant,
    *,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
    typed: FormData | None = None,
    typed_emails: str = "",
    new_key: str | None = None,
    child_form: ChildForm | None = None,
) -> HTMLResponse:
    """Render the class manager, its members table as the address asks (a page of a search,
    filter and order); `typed` is a refused settings form, shown as it was typed,
    `typed_emails` a refused paste of addresses, kept for the owner to correct, `new_key`
    an API key's secret, shown this once, and `child_form` a refused "add a child org"."""
    table = read_view(request.query_params)
    view = roster.org_at_a_glance(uow, org)
    config = request.app.state.config
    rows = roster.list_roster(
        uow, org, table.filter, table.sort, offset=table.offset, limit=PER_PAGE
    )
    showing_removed = table.filter.status == MemberStatus.REMOVED
    removed = (
        roster.list_roster(uow, org, RosterFilter(status=MemberStatus.REMOVED), limit=REMOVED_SHOWN)
        if not showing_removed
        else None
    )
    active_count = roster.count_active(uow, org)
    # A group's form ticks its members among every active one: while they fit on one page.
    editable_groups = active_count <= PER_PAGE
    # Counting each group's members reads them all: only where they are few.
    group_list: Sequence[GroupView | roster.GroupName]
    if editable_groups:
        group_list = groups.list_groups(uow, org, limit=SHOWN)
    else:
        group_list = roster.group_names(uow, org, limit=SHOWN)
    if not editable_groups:
        group_choices = []
    elif table == RosterView():
        group_choices = rows.members
    else:
        group_choices = roster.list_roster(uow, org, limit=PER_PAGE).members
    owner_or_operator = access.may_govern(grant)
    pending = InvitationStatus.PENDING
    invitation_list = invitations.list_invitations(uow, org, status=pending, limit=SHOWN)
    key_list = (
        auth.list_api_keys(uow, org, limit=SHOWN, newest_first=True) if owner_or_operator else []
    )
    listed = rows.members + (removed.members if removed else [])
    # Members name their groups, shown on this page or not.
    names = groups.group_names(uow, org, {g for member in listed for g in member.groups})
    # A refusal for a part the page no longer shows (a row just removed, say) goes on top.
    shown = {"invite", "members", "groups", "settings", "keys", "removed", "buy"}
    shown |= {f"member-{m.id}" for m in rows.members}
    # Its children's figures (read together, by one service call) and where its own credits
    # come from.
    family = family_panel(uow, org, grant, principal_of(user), child_form=child_form)
    shown |= family.parts_shown
    pages = max(1, -(-rows.total // PER_PAGE))
    context = {
        "org": view,
        "chart": pool_chart(reports.pool_history(uow, org), view.balance),
        "link": invitations.invite_link(uow, org, public_url=config.public_url),
        "invitations": invitation_list,
        "invitations_more": _more(
            invitation_list, lambda: invitations.count_invitations(uow, org, status=pending)
        ),
        "table": table,
        "rows_per_page": PER_PAGE,
        "rows": rows.members,
        "matching": rows.total,
        "pages": pages,
        "first_row": rows.offset + 1 if rows.members else 0,
        "showing_removed": showing_removed,
        "active_count": active_count,
        "removed": removed.members if removed else [],
        "removed_more": (removed.total - len(removed.members)) if removed else 0,
        "here": table.query(),
        "group_choices": group_choices,
        "editable_groups": editable_groups,
        "groups": group_list,
        "groups_more": _more(group_list, lambda: groups.count_groups(uow, org)),
        "group_names": names,
        "metrics": roster.metric_names(uow, org),
        "roles": list(Role),
        "statuses": list(MemberStatus),
        "is_owner": owner_or_operator,
        "api_keys": key_list,
        "api_keys_more": _more(key_list, lambda: auth.count_api_keys(uow, org)),
        "buying": buying_panel(uow, org, config) if owner_or_operator else None,
        # Inviting, removing or bringing back a manager is the owner's (or an operator's).
        "handled_roles": access.roles_handled_by(grant),
        "new_key": new_key,
        "settings_form": _settings_form(view.settings, typed),
        "typed_emails": typed_emails,
        "errors": errors or {},
        "stray_errors": [text for part, text in (errors or {}).items() if part not in shown],
        "seats": list(Seat),
        "meters_seats": meters_seats(view),
        "family": family,
        # Where its credits came from, lot by lot, and a notice of those expiring this week.
        "lots": lots_panel(uow, org, grant, view.balance),
    }
    return render(request, "dashboard.html", context, user=user, status_code=status_code)


def _more(shown: list[Any], count: Callable[[], int]) -> int:
    """How many of a bounded list the page leaves out (counted only when the list is full)."""
    return count() - len(shown) if len(shown) >= SHOWN else 0


async def act(
    request: Request,
    uow: UnitOfWork,
    user: UserView,
    org: str,
    permission: Permission,
    section: str,
    run: Callable[[Grant, FormData], str],
) -> Response:
    """Authorize, run one action, and redirect with its confirmation or re-render with why
    not."""
    grant = grant_for(uow, user, org, permission)
    form = await request.form()
    try:
        message = run(grant, form)
    except (InvalidInput, Conflict, NotFound, Forbidden) as error:
        return dashboard(
            request,
            uow,
            user,
            org,
            grant,
            errors={section: error.detail},
            status_code=status_of(error),
            typed=form if section == "settings" else None,
            typed_emails=str(form.get("emails") or "") if section == "invite" else "",
        )
    flash(request, message)
    raise RedirectTo(f"/orgs/{org}{_back_to(request)}#{section}")


def _back_to(request: Request) -> str:
    """The members table's query string the form came from ("" for the usual view)."""
    try:
        query = read_view(request.query_params).query()
    except InvalidInput:
        return ""
    return f"?{query}" if query else ""


def _settings_form(settings: OrgSettings, typed: FormData | None) -> dict[str, Any]:
    """The settings form's values: as saved, or as typed in a form that was refused."""
    if typed is not None:
        fields = (
            "bundle",
            "max_per_member",
            "rate_licensed",
            "rate_unlicensed",
            "rate_external",
            "period",
            "timezone",
        )
        shown: dict[str, Any] = {name: str(typed.get(name) or "") for name in fields}
        flags = ("returnable", "auto_enabled", "reclaim")
        return shown | {name: name in typed for name in flags}
    auto, rates = settings.auto_allocation, settings.seat_rates
    return {
        "returnable": settings.returnable,
        "auto_enabled": auto.enabled,
        "bundle": _c(auto.bundle),
        "max_per_member": _c(auto.max_per_member),
        "rate_licensed": _c(rates.licensed),
        "rate_unlicensed": _c(rates.unlicensed),
        "rate_external": _c(rates.external),
        "period": "" if auto.period is None else str(auto.period),
        "reclaim": auto.reclaim,
        "timezone": settings.timezone,
    }


@router.get("/orgs/{org}")
def manage(request: Request, org: str, uow: PageUow, user: CurrentUser) -> HTMLResponse:
    """The class manager."""
    grant = grant_for(uow, user, org, Permission.MANAGE)
    return dashboard(request, uow, user, org, grant)


def _target(request: Request, form: FormData) -> Target:
    chosen = forms.text(form, "target")
    if chosen == "all":
        return Target.all_students()
    if chosen.startswith("group:"):
        return Target.group(chosen.removeprefix("group:"))
    every = forms.text(form, "every_matching", required=False)
    if every:
        # The table's filter rides on the form's address; the count is what it showed, so
        # the action refuses if the members matching changed since.
        if not every.isdigit():
            raise InvalidInput("the count of matching members is a number")
        return Target.filtered(read_view(request.query_params).filter, expected=int(every))
    selected = forms.choices(form, "member_ids")
    if not selected:
        raise InvalidInput("tick the members first, or choose a group or everyone")
    return Target.members(selected)


@router.post("/orgs/{org}/credits", dependencies=[Csrf])
async def move_credits(request: Request, org: str, uow: PageUow, user: CurrentUser) -> Response:
    """Allot to, or revoke from, the ticked members, a group, or every student."""

    def run(grant: Grant, form: FormData) -> str:
        target = _target(request, form)
        if forms.text(form, "action") == "revoke":
            batch = credit_service.revoke_credits(
                uow, org, target, forms.amount(form, required=False), actor=grant.actor
            )
            return f"Took back {_c(batch.total)} credits from {len(batch.members)} member(s)."
        batch = credit_service.allocate_credits(
            uow, org, target, forms.required_amount(form), actor=grant.actor
        )
        return f"Allotted {_c(batch.total)} credits to {len(batch.members)} member(s)."

    return await act(request, uow, user, org, Permission.MANAGE, "members", run)


@router.post("/orgs/{org}/members/{member}/credits", dependencies=[Csrf])
async def member_credits(
    request: Request, org: str, member: str, uow: PageUow, user: CurrentUser
) -> Response:
    """Add credits to, or take them from, one member."""

    def run(grant: Grant, form: FormData) -> str:
        amount = forms.required_amount(form)
        if forms.text(form, "action") == "revoke":
            credit_service.revoke_credits(
                uow, org, Target.members([member]), amount, actor=grant.actor
            )
            return f"Took back {_c(amount)} credits."
        credit_service.allocate_credits(
            uow, org, Target.members([member]), amount, actor=grant.actor
        )
        return f"Added {_c(amount)} credits."

    return await act(request, uow, user, org, Permission.MANAGE, f"member-{member}", run)


@router.post("/orgs/{org}/members/{member}/seat", dependencies=[Csrf])
async def change_seat(
    request: Request, org: str, member: str, uow: PageUow, user: CurrentUser
) -> Response:
    """Assign or unassign a licence."""

    def run(grant: Grant, form: FormData) -> str:
        seat = _choice(Seat, forms.text(form, "seat"))
        changed = members.change_member(uow, org, member, seat=seat, actor=grant.actor)
        return f"{changed.name}'s seat is now {changed.seat}."

    return await act(request, uow, user, org, Permission.MANAGE, f"member-{member}", run)


@router.post("/orgs/{org}/members/{member}/role", dependencies=[Csrf])
async def change_role(
    request: Request, org: str, member: str, uow: PageUow, user: CurrentUser
) -> Response:
    """Make a member a manager, a member again, or the owner (the owner only)."""

    def run(grant: Grant, form: FormData) -> str:
        role = _choice(Role, forms.text(form, "role"))
        changed = members.change_member(
            uow, org, member, role=role, actor=grant.actor, caller_role=grant.role
        )
        return f"{changed.name} is now {changed.role}."

    return await act(request, uow, user, org, Permission.GOVERN, f"member-{member}", run)


@router.post("/orgs/{org}/members/{member}/remove", dependencies=[Csrf])
async def remove_member(
    request: Request, org: str, member: str, uow: PageUow, user: CurrentUser
) -> Response:
    """Remove a member; its history stays."""

    def run(grant: Grant, form: FormData) -> str:
        removed = members.remove_member(uow, org, member, actor=grant.actor, caller_role=grant.role)
        return f"Removed {removed.name}."

    return await act(request, uow, user, org, Permission.MANAGE, f"member-{member}", run)


@router.post("/orgs/{org}/members/{member}/restore", dependencies=[Csrf])
async def restore_member(
    request: Request, org: str, member: str, uow: PageUow, user: CurrentUser
) -> Response:
    """Bring a removed member back, with its history."""

    def run(grant: Grant, form: FormData) -> str:
        back = members.restore_member(uow, org, member, actor=grant.actor, caller_role=grant.role)
        return f"{back.name} is back, as {back.role} with a {back.seat} seat."

    return await act(request, uow, user, org, Permission.MANAGE, "removed", run)


@router.post("/orgs/{org}/invite-link/rotate", dependencies=[Csrf])
async def rotate_link(request: Request, org: str, uow: PageUow, user: CurrentUser) -> Response:
    """A new invite link; the old one stops working at once."""

    def run(grant: Grant, form: FormData) -> str:
        orgs.rotate_invite_code(uow, org, actor=grant.actor)
        return "New invite link made; the old one no longer works."

    return await act(request, uow, user, org, Permission.MANAGE, "invite", run)


@router.post("/orgs/{org}/invitations", dependencies=[Csrf])
async def invite(request: Request, org: str, uow: PageUow, user: CurrentUser) -> Response:
    """Invite pasted addresses by e-mail, as members (or, by the owner, as managers)."""

    def run(grant: Grant, form: FormData) -> str:
        made = invitations.invite_by_email(
            uow,
            org,
            forms.emails(form),
            role=_choice(Role, forms.text(form, "role", required=False) or Role.MEMBER),
            public_url=request.app.state.config.public_url,
            actor=grant.actor,
            caller_role=grant.role,
        )
        request.app.state.on_mail_queued()
        return f"Invited {len(made)} address(es)."

    return await act(request, uow, user, org, Permission.MANAGE, "invite", run)


@router.post("/orgs/{org}/invitations/{invitation}/revoke", dependencies=[Csrf])
async def revoke_invitation(
    request: Request, org: str, invitation: str, uow: PageUow, user: CurrentUser
) -> Response:
    """Withdraw an invitation."""

    def run(grant: Grant, form: FormData) -> str:
        invitations.revoke_invitation(uow, org, invitation)
        return "Invitation revoked."

    return await act(request, uow, user, org, Permission.MANAGE, "invite", run)


@router.post("/orgs/{org}/groups", dependencies=[Csrf])
async def create_group(request: Request, org: str, uow: PageUow, user: CurrentUser) -> Response:
    """A new class inside the org."""

    def run(grant: Grant, form: FormData) -> str:
        made = groups.create_group(uow, org, forms.text(form, "name"), actor=grant.actor)
        return f"Group {made.name} created."

    return await act(request, uow, user, org, Permission.MANAGE, "groups", run)


@router.post("/orgs/{org}/groups/{group}", dependencies=[Csrf])
async def edit_group(
    request: Request, org: str, group: str, uow: PageUow, user: CurrentUser
) -> Response:
    """Rename a group and set who is in it; or delete it."""

    def run(grant: Grant, form: FormData) -> str:
        action = forms.text(form, "action")
        if action == "delete":
            groups.delete_group(uow, org, group)
            return "Group deleted; its members are untouched."
        if action == "rename":  # a group too big to tick its members on the page
            renamed = groups.rename_group(uow, org, group, forms.text(form, "name"))
            return f"Group renamed {renamed.name}."
        changed = groups.save_group(
            uow,
            org,
            group,
            name=forms.text(form, "name"),
            member_ids=forms.choices(form, "member_ids"),
        )
        return f"Group {changed.name} saved: {changed.member_count} member(s)."

    return await act(request, uow, user, org, Permission.MANAGE, "groups", run)


def _c(micros: int) -> str:
    return format_credits(micros)


def _choice(kind: Any, value: str) -> Any:
    try:
        return kind(value)
    except ValueError as error:
        raise InvalidInput(f"{value!r} is not one of {[item.value for item in kind]}") from error
