"""Low-credit alerts: `credits.low` and `credits.depleted`, once per crossing.

`credits.low` fires when the pool's available falls below the owner's `low_balance`, or its
seat burn would empty it within `days_left` days; `credits.depleted` when available reaches
zero. Each fires once as the pool crosses into that state, and again only after the pool has
been out of it since: the org row keeps which crossings were announced (`alert_low`,
`alert_depleted`), flipped by a conditional UPDATE, so two transactions that both see a
crossing announce it once. Each announcement is a webhook event and an e-mail to the org's
owner and managers (through the mail outbox, sent when SMTP is set up).

The pool falls by writes (allotments, automatic top-ups) and by time (the seat burn): the
services that move credits out of the pool call `check` before they commit, and the worker
calls `sweep` for the burning orgs. An org nobody watches (no threshold, no endpoint for these
events) is never looked at.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import or_, select, update
from sqlalchemy.orm.attributes import set_committed_value

from creditpool.domain.amounts import format_credits
from creditpool.domain.model import MemberStatus, Role
from creditpool.services import event_bodies, events, lookups, mail
from creditpool.services.transactions import run_write
from creditpool.services.views import BalanceView, balance_view
from creditpool.storage.schema import Member, Org, User, table_of
from creditpool.storage.unit_of_work import UnitOfWork

_orgs = table_of(Org)
SWEEP_BATCH = 500


def watched(org: Org) -> bool:
    """Whether anyone listens for this org's alerts: a threshold, or an endpoint for them."""
    return (
        org.alert_low_balance is not None
        or org.alert_days_left is not None
        or events.subscribed(org, events.CREDITS_LOW)
        or events.subscribed(org, events.CREDITS_DEPLETED)
    )


def is_low(org: Org, balance: BalanceView, now: datetime) -> bool:
    """Whether the pool is under the owner's threshold or runs out within their days."""
    if org.alert_low_balance is not None and balance.available < org.alert_low_balance:
        return True
    return (
        org.alert_days_left is not None
        and balance.depletes_at is not None
        and balance.depletes_at <= now + timedelta(days=org.alert_days_left)
    )


def check(uow: UnitOfWork, org: Org) -> None:
    """Announce the crossings the pool shows now, inside the caller's open transaction
    (after its changes are flushed)."""
    if not watched(org):
        return
    balance = balance_view(uow, org, uow.now)
    low = is_low(org, balance, uow.now)
    if _flip(uow, org, "alert_low", low) and low:
        _announce(uow, org, events.CREDITS_LOW, balance)
    depleted = balance.available <= 0
    if _flip(uow, org, "alert_depleted", depleted) and depleted:
        _announce(uow, org, events.CREDITS_DEPLETED, balance)


def _flip(uow: UnitOfWork, org: Org, flag: str, value: bool) -> bool:
    """Set a crossing flag; return whether this transaction is the one that changed it."""
    if getattr(org, flag) == value:
        return False
    column = _orgs.c[flag]
    changed = uow.session.execute(
        update(_orgs).where(_orgs.c.id == org.id, column.is_(not value)).values({flag: value})
    )
    set_committed_value(org, flag, value)
    return bool(changed.rowcount)  # type: ignore[attr-defined]


def _announce(uow: UnitOfWork, org: Org, event_type: str, balance: BalanceView) -> None:
    events.emit(uow, org, event_type, lambda: event_bodies.balance_json(balance))
    available = format_credits(balance.available)
    if event_type == events.CREDITS_DEPLETED:
        subject = f"{org.name} has run out of credits"
        text = (
            f"The pool of {org.name} has no credits left: members cannot be given more, "
            "and seats that cost credits have lost their access until credits are bought."
        )
    else:
        subject = f"{org.name} is running low on credits"
        when = (
            f" At the current burn it runs out on {balance.depletes_at:%Y-%m-%d %H:%M} UTC."
            if balance.depletes_at is not None
            else ""
        )
        text = f"The pool of {org.name} has {available} credits available.{when}"
    for address in _governors(uow, org.id):
        mail.enqueue(
            uow,
            org_id=org.id,
            to_address=address,
            subject=subject,
            body=f"Hello,\n\n{text}\n\nThis is said once; you will hear again only after the "
            "pool has been above the threshold since.\n",
        )


def _governors(uow: UnitOfWork, org_id: str) -> list[str]:
    """The e-mail addresses of the org's active owner and managers."""
    return list(
        uow.session.scalars(
            select(User.email)
            .join(Member, Member.user_id == User.id)
            .where(
                Member.org_id == org_id,
                Member.status == MemberStatus.ACTIVE,
                Member.role.in_([Role.OWNER, Role.MANAGER]),
            )
            .order_by(User.email)
        )
    )


def sweep(uow: UnitOfWork) -> int:
    """Check every watched org whose pool burns with time, SWEEP_BATCH at a time by id; return
    how many crossings were announced or cleared."""
    watched = or_(
        _orgs.c.alert_low_balance.is_not(None),
        _orgs.c.alert_days_left.is_not(None),
        _orgs.c.webhook_events.like("%credits.low%"),
        _orgs.c.webhook_events.like("%credits.depleted%"),
    )
    # Only a burning pool changes with time; writes check the others.
    burning = _orgs.c.paused.is_(False) & (
        _orgs.c.licensed_seats * _orgs.c.rate_licensed
        + _orgs.c.unlicensed_seats * _orgs.c.rate_unlicensed
        + _orgs.c.external_seats * _orgs.c.rate_external
        > 0
    )
    candidates = lookups.orgs_in_batches(uow, lambda _: watched & burning, SWEEP_BATCH)
    # Read first: only an org whose state crossed since opens a write.
    return sum(
        run_write(uow, partial(_check_one, uow, org_id))
        for batch in candidates
        for org_id in batch
        if _crossed(uow, org_id)
    )


def _crossed(uow: UnitOfWork, org_id: str) -> bool:
    """Whether the org's pool now stands on the other side of an announced crossing."""
    with uow:
        org = uow.session.get(Org, org_id)
        if org is None:
            return False
        balance = balance_view(uow, org, uow.now)
        low = is_low(org, balance, uow.now)
        return low != org.alert_low or (balance.available <= 0) != org.alert_depleted


def _check_one(uow: UnitOfWork, org_id: str) -> int:
    org = uow.session.get(Org, org_id)
    if org is None:
        return 0
    before = (org.alert_low, org.alert_depleted)
    check(uow, org)
    return int((org.alert_low, org.alert_depleted) != before)
