"""What both ways of buying credits share: posting the purchase that credits the pool, the
`purchase.completed` event it emits, and the owner who hears about it.

Called inside a write that already holds the org's row (the pool's lock), so that deciding a
request or completing a checkout and the purchase it pays for commit together, once.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from creditpool.domain.amounts import format_credits
from creditpool.domain.model import AccountKind, MemberStatus, Role, TransferKind
from creditpool.services import events, ledger, metering
from creditpool.services.events import rfc3339
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
    source: dict[str, str],
) -> TransferView:
    """Credit the org's pool with `amount` bought (purchases -> pool) in the open transaction,
    the org's row locked, and emit `purchase.completed` with the transfer and its `source`
    (the request or checkout that paid for it)."""
    posting = ledger.Posting(uow.session, org.id, actor, uow.now)
    metering.settle(uow, org, actor=actor, posting=posting)
    posting.adjust(AccountKind.PURCHASES, -amount)
    posting.adjust(AccountKind.POOL, amount)
    row = posting.record(
        TransferKind.PURCHASE, AccountKind.PURCHASES, AccountKind.POOL, amount, reference=reference
    )
    posting.flush()
    view = transfer_view(row)
    events.emit(
        uow, org, events.PURCHASE_COMPLETED, lambda: {"transfer": transfer_data(view), **source}
    )
    return view


def transfer_data(view: TransferView) -> dict[str, Any]:
    """Return a transfer as the API shows it, for an event's data."""
    return {
        "id": view.id,
        "batch_id": view.batch_id,
        "kind": view.kind,
        "from": view.debit_account,
        "to": view.credit_account,
        "amount": format_credits(view.amount),
        "member_id": view.member_id,
        "reference": view.reference,
        "metrics": view.metrics,
        "actor": view.actor,
        "created_at": rfc3339(view.created_at),
    }


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
