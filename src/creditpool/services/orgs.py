"""Organisations: creation, settings, pause and resume, the invite code."""

from __future__ import annotations

from sqlalchemy import func, select

from creditpool.domain.model import MemberStatus, Role, Seat
from creditpool.domain.policies import OrgSettings, SettingsChange
from creditpool.domain.text import clean_name
from creditpool.services import (
    alerts,
    event_bodies,
    events,
    family_pause,
    ledger,
    metering,
    periods,
)
from creditpool.services.lookups import load_org, settlement_due
from creditpool.services.members import join
from creditpool.services.transactions import run_write
from creditpool.services.views import OrgView, org_view, settings_of
from creditpool.storage.ids import new_id, new_secret
from creditpool.storage.schema import Member, Org
from creditpool.storage.unit_of_work import UnitOfWork


def create_org(
    uow: UnitOfWork,
    *,
    name: str,
    owner_user_id: str,
    settings: SettingsChange | None = None,
    actor: str,
    idempotency_key: str | None = None,
) -> OrgView:
    """Open an org with its pool; the owner becomes its first member, on a licensed seat."""
    name = clean_name(name)
    chosen = (settings or SettingsChange()).applied_to(OrgSettings())

    def apply() -> OrgView:
        return org_view(uow, open_org(uow, name=name, owner_user_id=owner_user_id, chosen=chosen))

    return run_write(
        uow,
        apply,
        org_id="",
        actor=actor,
        key=idempotency_key,
        operation="create_org",
        arguments={"name": name, "owner": owner_user_id, "settings": repr(chosen)},
        result_type=OrgView,
    )


def open_org(
    uow: UnitOfWork,
    *,
    name: str,
    owner_user_id: str,
    chosen: OrgSettings,
    parent: Org | None = None,
) -> Org:
    """Add an org with its pool and owner inside the caller's transaction: at the top of a
    family, or a child of `parent` (locked by the caller), whose family, depth and paused
    ancestry it takes."""
    org_id = new_id("org")
    org = Org(
        id=org_id,
        parent_id=None if parent is None else parent.id,
        root_id=org_id if parent is None else parent.root_id,
        depth=1 if parent is None else parent.depth + 1,
        ancestor_paused=parent is not None and (parent.paused or parent.ancestor_paused),
        name=name,
        paused=False,
        invite_code=new_secret(),
        metered_since=uow.now,
        created_at=uow.now,
        licensed_seats=0,
        unlicensed_seats=0,
        external_seats=0,
    )
    _write_settings(uow, org, chosen)
    uow.session.add(org)
    uow.session.flush()
    ledger.open_accounts(uow.session, org.id)
    join(uow, org, user_id=owner_user_id, role=Role.OWNER, seat=Seat.LICENSED)
    return org


def _write_settings(uow: UnitOfWork, org: Org, settings: OrgSettings) -> None:
    org.returnable = settings.returnable
    org.auto_reclaim = settings.auto_allocation.reclaim
    # A new period or time zone starts counting afresh (services/periods.py's set_period).
    periods.set_period(uow, org, settings.auto_allocation.period, settings.timezone)
    org.auto_enabled = settings.auto_allocation.enabled
    org.auto_bundle = settings.auto_allocation.bundle
    org.auto_max_per_member = settings.auto_allocation.max_per_member
    org.rate_licensed = settings.seat_rates.licensed
    org.rate_unlicensed = settings.seat_rates.unlicensed
    org.rate_external = settings.seat_rates.external
    if (org.alert_low_balance, org.alert_days_left) != (
        settings.alerts.low_balance,
        settings.alerts.days_left,
    ):
        org.alert_low_balance = settings.alerts.low_balance
        org.alert_days_left = settings.alerts.days_left
        # New thresholds: the next check announces a crossing under them afresh.
        org.alert_low = False


def update_settings(
    uow: UnitOfWork, org_id: str, change: SettingsChange, *, actor: str
) -> OrgSettings:
    """Change any part of the settings; new seat rates apply from now on. A period boundary
    that has passed is settled under the old settings first; a new period or time zone then
    starts counting afresh from the period containing now, reclaiming nothing."""

    def apply() -> OrgSettings:
        org = load_org(uow, org_id, lock=True)
        settings = change.applied_to(settings_of(org))
        # The burn so far was at the old rates: post it before they change.
        if metering.moves_rate(org, rates=settings.seat_rates):
            metering.settle(uow, org, actor=actor)
        _write_settings(uow, org, settings)
        uow.session.flush()
        alerts.check(uow, org)  # new thresholds or rates may put the pool past one
        return settings

    return run_write(uow, apply)


def set_paused(
    uow: UnitOfWork, org_id: str, *, paused: bool, actor: str, idempotency_key: str | None = None
) -> OrgView:
    """Pause (nothing burns, usage is refused) or resume an org; doing it twice changes nothing.
    Its descendants' burn stops and starts with it (their usage goes on)."""

    def apply() -> OrgView:
        org = load_org(uow, org_id, lock=True)
        changed = org.paused != paused
        if changed:
            metering.settle(uow, org, actor=actor)
            org.paused = paused
            uow.session.flush()
            alerts.check(uow, org)  # the burn stopped or started again
            family_pause.flow_down(uow, org, actor=actor)  # and in its descendants
        view = org_view(uow, org)
        if changed:
            event = events.ORG_PAUSED if paused else events.ORG_RESUMED
            events.emit(uow, org, event, lambda: event_bodies.org_json(view))
        return view

    return run_write(
        uow,
        apply,
        org_id=org_id,
        actor=actor,
        key=idempotency_key,
        operation="pause" if paused else "resume",
        arguments={},
        result_type=OrgView,
    )


def rotate_invite_code(
    uow: UnitOfWork, org_id: str, *, actor: str, idempotency_key: str | None = None
) -> str:
    """Give the org a new invite code; the old one stops working at once."""

    def apply() -> str:
        org = load_org(uow, org_id, lock=True)
        org.invite_code = new_secret()
        return org.invite_code

    return run_write(
        uow,
        apply,
        org_id=org_id,
        actor=actor,
        key=idempotency_key,
        operation="rotate_invite_code",
        arguments={},
        result_type=str,
    )


def get_org(uow: UnitOfWork, org_id: str) -> OrgView:
    """Return the org with its settings and balance now; its roll-up reads its descendants
    with their passed period boundaries settled (services/periods.settle_below)."""
    periods.settle_below(uow, [org_id])
    with uow:
        return org_view(uow, load_org(uow, org_id))


def count_orgs(uow: UnitOfWork) -> int:
    """Return how many orgs there are."""
    with uow:
        return int(uow.session.scalar(select(func.count()).select_from(Org)) or 0)


def list_orgs(
    uow: UnitOfWork,
    *,
    user_id: str | None = None,
    managed_only: bool = False,
    org_id: str | None = None,
    after: str | None = None,
    limit: int = 50,
) -> list[OrgView]:
    """Return orgs by id: all, one, or those where `user_id` is active (and runs them); the
    period boundaries and lot expiries passed among them are settled first
    (services/periods.py, services/expiry.py)."""
    query = select(Org).order_by(Org.id).limit(limit)
    with uow:
        if org_id is not None:
            query = query.where(Org.id == org_id)
        if user_id is not None:
            query = query.join(Member, Member.org_id == Org.id).where(
                Member.user_id == user_id, Member.status == MemberStatus.ACTIVE
            )
            if managed_only:
                query = query.where(Member.role.in_([Role.OWNER, Role.MANAGER]))
        if after is not None:
            query = query.where(Org.id > after)
        found = list(uow.session.scalars(query))
        due = [org.id for org in found if settlement_due(org, uow.now)]
        # Their roll-ups read their descendants: those past a boundary are settled too.
        due += periods.due_below(uow, [org.id for org in found])
        if not due:
            return [org_view(uow, org) for org in found]
    for due_id in due:
        periods.settle_due(uow, due_id)
    with uow:
        return [org_view(uow, org) for org in uow.session.scalars(query)]
