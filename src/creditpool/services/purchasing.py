"""What both ways of buying credits share: posting the purchase that credits the pool, the
`purchase.completed` event it emits, and the owner who hears about it.

Called inside a write that already holds the org's row (the pool's lock), so that deciding a
request or completing a checkout and the purchase it pays for commit together, once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from creditpool.domain.model import (
    DEFAULT_PRIORITY,
    AccountKind,
    MemberStatus,
    Role,
    TransferKind,
)
from creditpool.services import alerts, event_bodies, events, ledger, metering
from creditpool.services.views import TransferView, transfer_view
from creditpool.storage.schema import Member, Org, User
from creditpool.storage.unit_of_work import UnitOfWork


def post_purchase(
    uow: UnitOfWork,
    org: Org,
    amount: int,
    *,
    reference: str | None,
    actor: str,
    priority: int = DEFAULT_PRIORITY,
    expires_at: datetime | None = None,
) -> TransferView:
    """Credit the org's pool with `amount` bought (purchases -> pool), a new lot of these
    terms (services/lots.py), in the open transaction, the org's row locked:
    `purchase.completed` carries the transfer, as a recorded purchase's does, and the pool's
    low-credit alert is checked again."""
    posting = ledger.Posting(uow.session, org.id, actor, uow.now)
    metering.settle(uow, org, actor=actor, posting=posting)
    posting.adjust(AccountKind.PURCHASES, -amount)
    posting.adjust(AccountKind.POOL, amount)
    row = posting.record(
        TransferKind.PURCHASE,
        AccountKind.PURCHASES,
        AccountKind.POOL,
        amount,
        reference=reference,
        new_lot={"priority": priority, "expires_at": expires_at},
    )
    posting.flush()
    view = transfer_view(row)
    events.emit(uow, org, events.PURCHASE_COMPLETED, lambda: event_bodies.transfer_json(view))
    alerts.check(uow, org)
    return view


def owner_address(uow: UnitOfWork, org_id: str) -> str | None:
    """Return the e-mail address of the org's owner (None if the org has none active)."""
    return uow.session.scalars(
        select(User.email)
        .join(Member, Member.user_id == User.id)
        .where(
            Member.org_id == org_id,
            Member.role == Role.OWNER,
            Member.status == MemberStatus.ACTIVE,
        )
        .limit(1)
    ).first()
