"""Holds: credits reserved in a wallet for long work (a render job).

Place a hold (topping up under automatic allocation, like usage), then capture up to the
reserve as usage, or void it. A hold past its expiry releases itself: reads treat it as expired
at once, and the next write that touches the wallet marks it so. A held credit is still in the
wallet (`balance`) but not available (`balance - held`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from functools import partial

from sqlalchemy import select

from creditpool.domain.amounts import format_credits
from creditpool.domain.errors import (
    InsufficientCredits,
    InvalidInput,
    NotFound,
)
from creditpool.domain.model import AccountKind, HoldStatus, TransferKind
from creditpool.services import alerts, event_bodies, events, expiry, ledger, lots
from creditpool.services.credits import check_amount, check_reference
from creditpool.services.ledger import wallet_account
from creditpool.services.lookups import load_member, load_org, settlement_due
from creditpool.services.transactions import run_write
from creditpool.services.usage import add_usage, check_metrics
from creditpool.services.views import HoldView, UsageResult, hold_view, member_view, transfer_view
from creditpool.services.wallets import (
    load_chargeable,
    make_spendable,
    release_expired_holds,
)
from creditpool.storage.ids import new_id
from creditpool.storage.schema import Hold, Org
from creditpool.storage.unit_of_work import UnitOfWork

DEFAULT_HOLD_SECONDS = 3600
MAX_HOLD_SECONDS = 604_800


def place_hold(
    uow: UnitOfWork,
    org_id: str,
    member_id: str,
    amount: int,
    *,
    expires_in: int = DEFAULT_HOLD_SECONDS,
    reference: str | None = None,
    actor: str,
    idempotency_key: str | None = None,
) -> HoldView:
    """Reserve `amount` of a member's credits until captured, voided or expired."""
    check_amount(amount)
    check_reference(reference)
    if isinstance(expires_in, bool) or not 1 <= expires_in <= MAX_HOLD_SECONDS:
        raise InvalidInput(f"a hold expires in 1 to {MAX_HOLD_SECONDS} seconds")

    def apply() -> HoldView:
        org, member = load_chargeable(uow, org_id, member_id)
        posting = ledger.Posting(uow.session, org_id, actor, uow.now)
        wallet = wallet_account(member_id)
        topped_up = 0
        if not posting.reserve(wallet, amount):
            topped_up = make_spendable(uow, org, member, amount, posting)
            if not posting.reserve(wallet, amount):  # pragma: no cover - made spendable
                raise InsufficientCredits("the wallet cannot cover the hold")
        posting.flush()
        shares = lots.hold(uow.session, org_id, wallet, amount, uow.now)
        if topped_up:
            alerts.check(uow, org)  # the top-up came out of the pool
        hold = Hold(
            org_id=org_id,
            id=new_id("hld"),
            member_id=member_id,
            amount=amount,
            captured=None,
            status=HoldStatus.PENDING,
            expires_at=uow.now + timedelta(seconds=expires_in),
            reference=reference,
            created_at=uow.now,
            lots=lots.shares_json(shares),
        )
        uow.session.add(hold)
        uow.session.flush()
        return hold_view(hold, uow.now)

    return run_write(
        uow,
        apply,
        org_id=org_id,
        actor=actor,
        key=idempotency_key,
        operation="place_hold",
        arguments={"member": member_id, "amount": amount, "ttl": expires_in, "ref": reference},
        result_type=HoldView,
    )


def _load_open_hold(uow: UnitOfWork, org_id: str, hold_id: str) -> Hold:
    hold = uow.session.scalars(
        select(Hold)
        .where(Hold.org_id == org_id, Hold.id == hold_id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ).one_or_none()
    if hold is None:
        raise NotFound(f"no hold {hold_id} in this org")
    return hold


def capture_hold(
    uow: UnitOfWork,
    org_id: str,
    hold_id: str,
    amount: int,
    *,
    metrics: Mapping[str, object] | None = None,
    actor: str,
    idempotency_key: str | None = None,
) -> UsageResult:
    """Charge up to the reserved amount as usage and release the rest of the hold."""
    check_amount(amount)
    checked = check_metrics(metrics)

    def apply() -> UsageResult:
        org: Org = load_org(uow, org_id)
        if settlement_due(org, uow.now):
            org = load_org(uow, org_id, lock=True)  # settles the boundary or expiry passed
        hold = _load_open_hold(uow, org_id, hold_id)
        if hold.status != HoldStatus.PENDING or hold.expires_at <= uow.now:
            raise InsufficientCredits(f"the hold is {hold_view(hold, uow.now).status}, not pending")
        if amount > hold.amount:
            raise InsufficientCredits(
                f"the hold reserves {format_credits(hold.amount)}; "
                f"{format_credits(amount)} cannot be captured"
            )
        wallet = wallet_account(hold.member_id)
        posting = ledger.Posting(uow.session, org_id, actor, uow.now)
        posting.capture(wallet, amount, reserved=hold.amount)
        # What is captured comes from the hold's lots, first in spending order; the rest is
        # let go, and lapses at once if its lot has expired while held.
        reserved = lots.shares_of(hold.lots)
        spent, unspent = lots.split(reserved, amount)
        row = posting.record(
            TransferKind.USAGE,
            wallet,
            AccountKind.USAGE,
            amount,
            member_id=hold.member_id,
            hold_id=hold.id,
            reference=hold.reference,
            metrics=checked,
            lots=spent,
            release=reserved,
        )
        posting.flush()
        expiry.expire_released(uow, org_id, wallet, unspent)
        hold.status = HoldStatus.CAPTURED
        hold.captured = amount
        hold.closed_at = uow.now
        add_usage(uow, org_id, hold.member_id, amount, checked)
        member = load_member(uow, org_id, hold.member_id)
        uow.session.refresh(member)
        result = UsageResult(transfer_view(row), member_view(uow, org, member))
        events.emit(uow, org, events.USAGE_RECORDED, lambda: event_bodies.usage_json(result))
        posting.adjust(AccountKind.USAGE, amount)  # the org's hot row, last (see ledger.py)
        return result

    return run_write(
        uow,
        apply,
        org_id=org_id,
        actor=actor,
        key=idempotency_key,
        operation="capture_hold",
        arguments={"hold": hold_id, "amount": amount, "metrics": checked},
        result_type=UsageResult,
    )


def void_hold(
    uow: UnitOfWork, org_id: str, hold_id: str, *, actor: str, idempotency_key: str | None = None
) -> HoldView:
    """Release a pending hold in full; a hold already closed is returned as it is."""

    def apply() -> HoldView:
        org = load_org(uow, org_id)
        if settlement_due(org, uow.now):
            # A passed boundary or expiry is settled before the held credits come free.
            load_org(uow, org_id, lock=True)
        hold = _load_open_hold(uow, org_id, hold_id)
        if hold.status == HoldStatus.PENDING:
            if hold.expires_at <= uow.now:
                release_expired_holds(uow, org_id, [hold.member_id])
            else:
                posting = ledger.Posting(uow.session, org_id, actor, uow.now)
                wallet = wallet_account(hold.member_id)
                posting.release(wallet, hold.amount)
                lots.release(uow.session, org_id, wallet, lots.shares_of(hold.lots))
                expiry.expire_released(uow, org_id, wallet, lots.shares_of(hold.lots))
                hold.status = HoldStatus.VOIDED
                hold.closed_at = uow.now
            uow.session.flush()
            uow.session.refresh(hold)
        return hold_view(hold, uow.now)

    return run_write(
        uow,
        apply,
        org_id=org_id,
        actor=actor,
        key=idempotency_key,
        operation="void_hold",
        arguments={"hold": hold_id},
        result_type=HoldView,
    )


def get_hold(uow: UnitOfWork, org_id: str, hold_id: str) -> HoldView:
    """Return a hold of the org."""
    with uow:
        hold = uow.session.get(Hold, (org_id, hold_id))
        if hold is None:
            raise NotFound(f"no hold {hold_id} in this org")
        return hold_view(hold, uow.now)


def expire_holds(uow: UnitOfWork) -> int:
    """Release every hold past its expiry, org by org; return how many. For the worker."""
    with uow:
        org_ids = list(
            uow.session.scalars(
                select(Hold.org_id)
                .where(Hold.status == HoldStatus.PENDING, Hold.expires_at <= uow.now)
                .distinct()
            )
        )
    # One transaction per org: an org's holds are released together, and no org waits on another.
    return sum(run_write(uow, partial(release_expired_holds, uow, org_id)) for org_id in org_ids)
