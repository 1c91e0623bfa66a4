"""Charging usage against a member's wallet, with its metrics.

A charge first tries the fast path (charging.py): a conditional debit of the wallet and a few
statements built once. If the wallet is short, expired holds are released and, under automatic
allocation, the wallet is topped up from the pool in bundles (domain/policies.py has the exact
rule). If it still cannot pay, nothing moves.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from sqlalchemy.orm.attributes import set_committed_value

from creditpool.domain.errors import InsufficientCredits, InvalidInput
from creditpool.domain.model import AccountKind, TransferKind
from creditpool.services import alerts, event_bodies, events, ledger
from creditpool.services.charging import add_metrics, try_charge
from creditpool.services.credits import check_amount, check_reference
from creditpool.services.ledger import bulk_update, wallet_account
from creditpool.services.totals import limit_exceeded, within_limit
from creditpool.services.transactions import run_write
from creditpool.services.views import UsageResult, member_view, transfer_view
from creditpool.services.wallets import load_chargeable, make_spendable
from creditpool.storage.schema import Member
from creditpool.storage.unit_of_work import UnitOfWork

MAX_METRICS = 20
MAX_METRIC_VALUE = 2**53
METRIC_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


def check_metrics(metrics: Mapping[str, object] | None) -> dict[str, int] | None:
    """Return metrics as names to non-negative integers, or raise InvalidInput."""
    if metrics is None:
        return None
    if len(metrics) > MAX_METRICS:
        raise InvalidInput(f"at most {MAX_METRICS} metrics per usage")
    checked: dict[str, int] = {}
    for name, value in metrics.items():
        if not isinstance(name, str) or not METRIC_NAME.fullmatch(name):
            raise InvalidInput(f"metric names are 1 to 64 letters, digits, '_', '.', '-': {name!r}")
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInput(f"metric {name} must be a whole number")
        if not 0 <= value <= MAX_METRIC_VALUE:
            raise InvalidInput(f"metric {name} must be between 0 and 2^53")
        checked[name] = value
    return checked


def charge_usage(
    uow: UnitOfWork,
    org_id: str,
    member_id: str,
    amount: int,
    *,
    metrics: Mapping[str, object] | None = None,
    reference: str | None = None,
    actor: str,
    idempotency_key: str | None = None,
) -> UsageResult:
    """Charge `amount` to a member's wallet for work done, topping it up when the org allows."""
    check_amount(amount)
    check_reference(reference)
    checked = check_metrics(metrics)

    def apply() -> UsageResult:
        return apply_usage(uow, org_id, member_id, amount, checked, reference, actor)

    return run_write(
        uow,
        apply,
        org_id=org_id,
        actor=actor,
        key=idempotency_key,
        operation="charge_usage",
        arguments={"member": member_id, "amount": amount, "metrics": checked, "ref": reference},
        result_type=UsageResult,
    )


def apply_usage(
    uow: UnitOfWork,
    org_id: str,
    member_id: str,
    amount: int,
    metrics: dict[str, int] | None,
    reference: str | None,
    actor: str,
) -> UsageResult:
    """Charge usage inside the caller's open transaction; arguments already checked."""
    charged = try_charge(uow, org_id, member_id, amount, metrics, reference, actor)
    if charged is not None:
        return charged
    # The wallet cannot pay as it stands: free expired holds, top it up if the org allows.
    org, member = load_chargeable(uow, org_id, member_id)
    posting = ledger.Posting(uow.session, org_id, actor, uow.now)
    wallet = wallet_account(member_id)
    topped_up = 0
    if not posting.withdraw(wallet, amount):
        topped_up = make_spendable(uow, org, member, amount, posting)
        if not posting.withdraw(wallet, amount):  # pragma: no cover - made spendable above
            raise InsufficientCredits("the wallet cannot pay")
    row = posting.record(
        TransferKind.USAGE,
        wallet,
        AccountKind.USAGE,
        amount,
        member_id=member_id,
        reference=reference,
        metrics=metrics,
    )
    posting.flush()
    add_usage(uow, org_id, member_id, amount, metrics)
    result = UsageResult(transfer_view(row), member_view(uow, org, member), topped_up)
    events.emit(uow, org, events.USAGE_RECORDED, lambda: event_bodies.usage_json(result))
    if topped_up:
        alerts.check(uow, org)  # the top-up came out of the pool
    # Every charge of the org credits this one row: touch it last, so its lock is held only
    # from here to the commit (see the lock order in ledger.py).
    posting.adjust(AccountKind.USAGE, amount)
    return result


# What a member's view shows that a concurrent write may have changed since it was loaded.
_MEMBER_FIGURES = (
    "used_total",
    "allocated_total",
    "auto_allocated_total",
    "role",
    "seat",
    "status",
    "removed_at",
)


def add_usage(
    uow: UnitOfWork, org_id: str, member_id: str, amount: int, metrics: dict[str, int] | None
) -> None:
    """Add a charge to the member's running totals of credits used and of each metric.

    The member's loaded object, if any, gets the row as it now stands (locked by this update,
    so no other write changes it before the commit), without a query of its own.
    """
    fresh = uow.session.execute(
        bulk_update(Member)
        .where(
            Member.org_id == org_id,
            Member.id == member_id,
            within_limit(Member.used_total, amount),
        )
        .values(used_total=Member.used_total + amount)
        .returning(*(getattr(Member, name) for name in _MEMBER_FIGURES))
    ).one_or_none()
    if fresh is None:
        raise limit_exceeded("the member's total of credits used")
    loaded = uow.session.identity_map.get(uow.session.identity_key(Member, (org_id, member_id)))
    if loaded is not None:
        for name, value in zip(_MEMBER_FIGURES, fresh, strict=True):
            set_committed_value(loaded, name, value)
    if metrics:
        add_metrics(uow.session.connection(), org_id, member_id, metrics)
