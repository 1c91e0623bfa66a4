"""Purchase requests: an owner asks for credits, an operator approves or declines, once.

Approving posts one purchase into the pool and marks the request approved in the same
transaction, with the org's row locked first and the request's row next (the pool's lock
order), so two approvals at once, or an approval retried, credit the pool once: the second
finds the request approved and answers it as it stands. Approving a declined request, or
declining an approved one, is refused (`request_decided`). The owner is e-mailed the outcome
through the outbox, in the deciding transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from creditpool.domain.amounts import format_credits
from creditpool.domain.errors import InvalidInput, NotFound, RequestDecided
from creditpool.domain.purchases import PurchaseRequestStatus
from creditpool.domain.text import check_plain_text
from creditpool.services import mail
from creditpool.services.credits import check_amount, check_reference
from creditpool.services.lookups import load_org
from creditpool.services.purchasing import owner_address, post_purchase
from creditpool.services.transactions import run_write
from creditpool.storage.ids import new_id
from creditpool.storage.schema import Org, PurchaseRequest
from creditpool.storage.unit_of_work import UnitOfWork

MAX_TEXT_LENGTH = 500  # a note or a reason


@dataclass(frozen=True)
class PurchaseRequestView:
    """A request for credits and, once decided, its outcome."""

    id: str
    org_id: str
    amount: int
    note: str | None
    status: PurchaseRequestStatus
    reason: str | None
    requested_by: str
    decided_by: str | None
    created_at: datetime
    decided_at: datetime | None
    transfer_id: str | None


@dataclass(frozen=True)
class PendingRequestView:
    """A request waiting for an operator, with the name of the org that asks."""

    request: PurchaseRequestView
    org_name: str


def _view(row: PurchaseRequest) -> PurchaseRequestView:
    return PurchaseRequestView(
        id=row.id,
        org_id=row.org_id,
        amount=row.amount,
        note=row.note,
        status=PurchaseRequestStatus(row.status),
        reason=row.reason,
        requested_by=row.requested_by,
        decided_by=row.decided_by,
        created_at=row.created_at,
        decided_at=row.decided_at,
        transfer_id=row.transfer_id,
    )


def _check_text(value: str | None, *, what: str) -> str | None:
    """Return the text trimmed (None when empty); InvalidInput if too long or not plain."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if len(value) > MAX_TEXT_LENGTH:
        raise InvalidInput(f"{what} is at most {MAX_TEXT_LENGTH} characters")
    check_plain_text(value, what=what)
    return value


def request_credits(
    uow: UnitOfWork,
    org_id: str,
    amount: int,
    *,
    note: str | None = None,
    actor: str,
    idempotency_key: str | None = None,
) -> PurchaseRequestView:
    """Ask the operator for `amount` credits for the org's pool; the request waits, pending."""
    check_amount(amount)
    note = _check_text(note, what="a note")

    def apply() -> PurchaseRequestView:
        load_org(uow, org_id)
        row = PurchaseRequest(
            org_id=org_id,
            id=new_id("prq"),
            amount=amount,
            note=note,
            status=PurchaseRequestStatus.PENDING,
            requested_by=actor,
            created_at=uow.now,
        )
        uow.session.add(row)
        uow.session.flush()
        return _view(row)

    return run_write(
        uow,
        apply,
        org_id=org_id,
        actor=actor,
        key=idempotency_key,
        operation="request_credits",
        arguments={"amount": amount, "note": note},
        result_type=PurchaseRequestView,
    )


def list_purchase_requests(
    uow: UnitOfWork,
    org_id: str,
    *,
    status: PurchaseRequestStatus | None = None,
    before: str | None = None,
    limit: int | None = None,
) -> list[PurchaseRequestView]:
    """Return the org's requests, newest first, optionally of one status; a page of them with
    `before` (the last id of the previous page) and `limit`."""
    with uow:
        load_org(uow, org_id)
        query = select(PurchaseRequest).where(PurchaseRequest.org_id == org_id)
        if status is not None:
            query = query.where(PurchaseRequest.status == status)
        if before is not None:
            query = query.where(PurchaseRequest.id < before)
        query = query.order_by(PurchaseRequest.id.desc())
        if limit is not None:
            query = query.limit(limit)
        return [_view(row) for row in uow.session.scalars(query)]


def list_pending_requests(uow: UnitOfWork, *, limit: int) -> list[PendingRequestView]:
    """Return the oldest pending requests of every org (the operator's queue), at most `limit`."""
    with uow:
        rows = uow.session.execute(
            select(PurchaseRequest, Org.name)
            .join(Org, Org.id == PurchaseRequest.org_id)
            .where(PurchaseRequest.status == PurchaseRequestStatus.PENDING)
            .order_by(PurchaseRequest.id)
            .limit(limit)
        ).tuples()
        return [PendingRequestView(_view(row), name) for row, name in rows]


def count_pending_requests(uow: UnitOfWork) -> int:
    """Return how many requests of every org wait for an operator."""
    with uow:
        return (
            uow.session.scalar(
                select(func.count())
                .select_from(PurchaseRequest)
                .where(PurchaseRequest.status == PurchaseRequestStatus.PENDING)
            )
            or 0
        )


def _locked_request(uow: UnitOfWork, org_id: str, request_id: str) -> PurchaseRequest:
    row = uow.session.scalars(
        select(PurchaseRequest)
        .where(PurchaseRequest.org_id == org_id, PurchaseRequest.id == request_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    if row is None:
        raise NotFound(f"no purchase request {request_id} in this org")
    return row


def approve_request(
    uow: UnitOfWork,
    org_id: str,
    request_id: str,
    *,
    reference: str | None = None,
    actor: str,
    public_url: str | None = None,
    idempotency_key: str | None = None,
) -> PurchaseRequestView:
    """Approve a pending request: one purchase of its amount credits the pool, the owner is
    e-mailed. An approved request is answered as it stands (the pool is credited once,
    whatever the retries); a declined one is refused with RequestDecided."""
    check_reference(reference)

    def apply() -> PurchaseRequestView:
        org = load_org(uow, org_id, lock=True)  # the pool's lock first, then the request's
        row = _locked_request(uow, org_id, request_id)
        if row.status == PurchaseRequestStatus.APPROVED:
            return _view(row)
        if row.status == PurchaseRequestStatus.DECLINED:
            raise RequestDecided(f"purchase request {request_id} was declined already")
        bought = post_purchase(
            uow,
            org,
            row.amount,
            reference=reference or f"purchase request {row.id}",
            actor=actor,
        )
        row.status = PurchaseRequestStatus.APPROVED
        row.transfer_id = bought.id
        row.decided_by = actor
        row.decided_at = uow.now
        _mail_outcome(uow, org, row, public_url)
        uow.session.flush()
        return _view(row)

    return run_write(
        uow,
        apply,
        org_id=org_id,
        actor=actor,
        key=idempotency_key,
        operation="approve_purchase_request",
        arguments={"request": request_id, "reference": reference},
        result_type=PurchaseRequestView,
    )


def decline_request(
    uow: UnitOfWork,
    org_id: str,
    request_id: str,
    *,
    reason: str | None = None,
    actor: str,
    public_url: str | None = None,
    idempotency_key: str | None = None,
) -> PurchaseRequestView:
    """Decline a pending request, with an optional reason; the owner is e-mailed. A declined
    request is answered as it stands; an approved one is refused with RequestDecided."""
    reason = _check_text(reason, what="a reason")

    def apply() -> PurchaseRequestView:
        org = load_org(uow, org_id, lock=True)  # the same order as approving
        row = _locked_request(uow, org_id, request_id)
        if row.status == PurchaseRequestStatus.DECLINED:
            return _view(row)
        if row.status == PurchaseRequestStatus.APPROVED:
            raise RequestDecided(f"purchase request {request_id} was approved already")
        row.status = PurchaseRequestStatus.DECLINED
        row.reason = reason
        row.decided_by = actor
        row.decided_at = uow.now
        _mail_outcome(uow, org, row, public_url)
        uow.session.flush()
        return _view(row)

    return run_write(
        uow,
        apply,
        org_id=org_id,
        actor=actor,
        key=idempotency_key,
        operation="decline_purchase_request",
        arguments={"request": request_id, "reason": reason},
        result_type=PurchaseRequestView,
    )


def _mail_outcome(uow: UnitOfWork, org: Org, row: PurchaseRequest, public_url: str | None) -> None:
    """Tell the org's owner how their request was decided (through the outbox)."""
    address = owner_address(uow, org.id)
    if address is None:
        return
    amount = format_credits(row.amount)
    if row.status == PurchaseRequestStatus.APPROVED:
        subject = f"Approved: {amount} credits for {org.name}"
        outcome = (
            f"Your request for {amount} credits was approved: they are in the pool of {org.name}."
        )
    else:
        subject = f"Declined: your request for {amount} credits for {org.name}"
        why = f"\n\nThe reason given: {row.reason}" if row.reason else ""
        outcome = f"Your request for {amount} credits for {org.name} was declined.{why}"
    where = (
        f"\n\nThe class manager: {public_url.rstrip('/')}/orgs/{org.id}\n" if public_url else "\n"
    )
    mail.enqueue(
        uow,
        org_id=org.id,
        to_address=address,
        subject=subject,
        body=f"Hello,\n\n{outcome}{where}",
    )
