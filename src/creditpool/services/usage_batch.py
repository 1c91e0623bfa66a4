"""Batch usage: up to 1,000 usage events in one call, each applied at most once per key.

Each event stands alone: one that is malformed or refused is recorded with its error code and
does not stop the others. A key is unique per org and remembered for at least 30 days (in
services.idempotency); a key seen before answers its first result and changes nothing. The
whole batch is one transaction with a savepoint per event, so it commits once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from creditpool.domain.amounts import parse_credits
from creditpool.domain.errors import CreditpoolError, InvalidInput
from creditpool.domain.text import check_clean_text
from creditpool.services import idempotency
from creditpool.services.credits import check_amount, check_reference
from creditpool.services.lookups import load_org
from creditpool.services.transactions import run_write
from creditpool.services.usage import apply_usage, check_metrics
from creditpool.services.wallets import lock_expired_holds, lock_wallets, release_locked_holds
from creditpool.storage.unit_of_work import UnitOfWork

MAX_EVENTS = 1000
MAX_ID_LENGTH = 40  # the length of every id (storage.schema.ID): a longer one names no member


EVENT_FIELDS = frozenset({"key", "member_id", "amount", "metrics", "reference"})


@dataclass(frozen=True)
class UsageEventIn:
    """One event as the vendor sent it; validated here, one by one."""

    key: object
    member_id: object
    amount: object
    metrics: object = None
    reference: object = None

    @classmethod
    def parse(cls, raw: object) -> UsageEventIn:
        """Read one event of a batch; InvalidInput for anything but an object of known fields."""
        if not isinstance(raw, Mapping):
            raise InvalidInput("each event is an object with key, member_id and amount")
        check_clean_text(dict(raw))
        unknown = sorted(str(name) for name in raw if name not in EVENT_FIELDS)
        if unknown:
            raise InvalidInput(f"unknown field(s) in an event: {', '.join(unknown)}")
        return cls(**{str(name): value for name, value in raw.items()})


@dataclass(frozen=True)
class UsageEventResult:
    """The outcome of one event: charged (code None, with its transfer) or refused with a code.

    `key` is None when the event had no usable key (then it was not remembered either).
    """

    key: str | None
    code: str | None
    detail: str | None
    transfer_id: str | None
    replayed: bool = False


def _validated(event: UsageEventIn) -> tuple[str, int, dict[str, int] | None, str | None]:
    if not isinstance(event.member_id, str) or not event.member_id:
        raise InvalidInput("member_id must be a member's id")
    amount = parse_credits(event.amount)
    check_amount(amount)
    if event.metrics is not None and not isinstance(event.metrics, Mapping):
        raise InvalidInput("metrics must be an object of names to whole numbers")
    metrics = check_metrics(event.metrics)
    if event.reference is not None and not isinstance(event.reference, str):
        raise InvalidInput("reference must be a string")
    check_reference(event.reference)
    return event.member_id, amount, metrics, event.reference


def _echoed_key(raw: object) -> str | None:
    """Return the key of a refused event if it can be shown back as it came, else None."""
    key = raw.get("key") if isinstance(raw, Mapping) else None
    if not isinstance(key, str) or len(key) > 255:
        return None
    try:
        check_clean_text(key)
    except InvalidInput:
        return None
    return key


def _key_of(event: UsageEventIn) -> str:
    key = event.key
    if not isinstance(key, str) or not 1 <= len(key) <= 255:
        raise InvalidInput("each event needs a key of 1 to 255 characters")
    return key


def charge_usage_batch(
    uow: UnitOfWork, org_id: str, events: Sequence[object], *, actor: str
) -> list[UsageEventResult]:
    """Apply each event once per key; return a result per event, in the order sent.

    Two batches racing over the same members or keys may deadlock, or one may find a key the
    other stored first: the loser runs again from the start and replays what the winner did.
    """
    if not 1 <= len(events) <= MAX_EVENTS:
        raise InvalidInput(f"send 1 to {MAX_EVENTS} events")

    def apply() -> list[UsageEventResult]:
        _lock_up_front(uow, org_id, events)
        return [_apply_event(uow, org_id, raw, actor) for raw in events]

    return run_write(uow, apply, stores_keys=True)


def _lock_up_front(uow: UnitOfWork, org_id: str, events: Sequence[object]) -> None:
    """Take, before the first event, every lock the batch may need, in ledger.py's order.

    One charge locks its wallet, then the usage account; a batch would otherwise hold the usage
    account (and earlier wallets) while it locks the next wallet, or the org for a top-up, and
    two batches, or a batch and an allotment, would deadlock.
    """
    org = load_org(uow, org_id)
    if org.auto_enabled:
        load_org(uow, org_id, lock=True)
    named = {
        raw["member_id"]
        for raw in events
        if isinstance(raw, Mapping) and isinstance(raw.get("member_id"), str)
    }
    # Ids are short printable ASCII: anything else names no member (and its event is refused).
    members = sorted(
        member
        for member in named
        if len(member) <= MAX_ID_LENGTH and member.isascii() and member.isprintable()
    )
    # Holds, then every wallet in id order, and only then the wallets' held amounts change.
    expired = lock_expired_holds(uow, org_id, members)
    lock_wallets(uow, org_id, members)
    release_locked_holds(uow, org_id, expired)


def _apply_event(uow: UnitOfWork, org_id: str, raw: object, actor: str) -> UsageEventResult:
    try:
        event = UsageEventIn.parse(raw)
        key = _key_of(event)
    except InvalidInput as error:
        return UsageEventResult(_echoed_key(raw), error.code, error.detail, None)
    seen = idempotency.usage_key(uow, org_id, key)
    if seen is not None:
        return UsageEventResult(key, seen.code, seen.detail, seen.transfer_id, replayed=True)
    transfer_id = code = detail = None
    try:
        with uow.session.begin_nested():
            member_id, amount, metrics, reference = _validated(event)
            charged = apply_usage(uow, org_id, member_id, amount, metrics, reference, actor)
            transfer_id = charged.transfer.id
    except CreditpoolError as error:
        code, detail = error.code, error.detail[:500]
    idempotency.record_usage_key(
        uow,
        org_id,
        key,
        member_id=str(event.member_id),
        transfer_id=transfer_id,
        code=code,
        detail=detail,
    )
    return UsageEventResult(key, code, detail, transfer_id)
