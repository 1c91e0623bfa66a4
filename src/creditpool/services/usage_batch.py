"""Batch usage: up to 1,000 usage events in one call, each applied at most once per key.

Each event stands alone: one that is malformed or refused is recorded with its error code and
does not stop the others. A key is unique per org and remembered for at least 30 days (in
services.idempotency); a key seen before answers its first result and changes nothing. The
whole batch is one transaction, charged with a few set-based statements, so it commits once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from creditpool.domain.amounts import parse_credits
from creditpool.domain.errors import CreditpoolError, InvalidInput
from creditpool.domain.text import check_clean_text
from creditpool.services import idempotency
from creditpool.services.credits import check_amount, check_reference
from creditpool.services.many_charges import Charge, charge_many
from creditpool.services.transactions import run_write
from creditpool.services.usage import check_metrics
from creditpool.storage.unit_of_work import UnitOfWork

MAX_EVENTS = 1000


EVENT_FIELDS = frozenset({"key", "member_id", "amount", "metrics", "reference"})
EVENT_REQUIRED = frozenset({"key", "member_id", "amount"})


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
        missing = sorted(EVENT_REQUIRED - set(raw))
        if missing:
            raise InvalidInput(f"an event needs {', '.join(missing)}")
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

    The events are charged together (services/many_charges.py), with one read of the keys seen
    before and one write of the new ones. An event whose key came earlier in the same batch
    answers that event's outcome. Two batches racing over the same keys: one stores them
    first, the other fails on the first it finds stored, runs again and replays them.
    """
    if not 1 <= len(events) <= MAX_EVENTS:
        raise InvalidInput(f"send 1 to {MAX_EVENTS} events")
    return run_write(uow, lambda: _apply_events(uow, org_id, events, actor), stores_keys=True)


def _apply_events(
    uow: UnitOfWork, org_id: str, events: Sequence[object], actor: str
) -> list[UsageEventResult]:
    results: list[UsageEventResult | None] = [None] * len(events)
    keyed: list[tuple[int, str, UsageEventIn]] = []
    for index, raw in enumerate(events):
        try:
            event = UsageEventIn.parse(raw)
            keyed.append((index, _key_of(event), event))
        except InvalidInput as error:
            # Without a usable key there is nothing to remember it by.
            results[index] = UsageEventResult(_echoed_key(raw), error.code, error.detail, None)
    seen = idempotency.usage_keys(uow, org_id, {key for _, key, _ in keyed})
    first_of: dict[str, int] = {}  # a key's first event in this batch
    again: list[tuple[int, str]] = []  # a key's later events in this batch
    charges: list[tuple[int, str, Charge]] = []
    recorded: list[tuple[int, str, str]] = []  # index, key, member named
    for index, key, event in keyed:
        before = seen.get(key)
        if before is not None:
            results[index] = UsageEventResult(
                key, before.code, before.detail, before.transfer_id, replayed=True
            )
            continue
        if key in first_of:
            again.append((index, key))
            continue
        first_of[key] = index
        recorded.append((index, key, str(event.member_id)))
        try:
            member_id, amount, metrics, reference = _validated(event)
        except InvalidInput as error:
            results[index] = UsageEventResult(key, error.code, error.detail[:500], None)
            continue
        charges.append((index, key, Charge(member_id, amount, metrics, reference, actor)))
    outcomes = charge_many(uow, org_id, [charge for *_, charge in charges], with_members=False)
    for (index, key, _), outcome in zip(charges, outcomes, strict=True):
        if isinstance(outcome, CreditpoolError):
            results[index] = UsageEventResult(key, outcome.code, outcome.detail[:500], None)
        else:
            results[index] = UsageEventResult(key, None, None, outcome.transfer.id)
    for index, key in again:
        first = results[first_of[key]]
        assert first is not None
        results[index] = replace(first, replayed=True)
    idempotency.record_usage_keys(
        uow,
        org_id,
        [
            idempotency.UsageOutcome(key, member, *_outcome_of(results[index]))
            for index, key, member in recorded
        ],
    )
    return [result for result in results if result is not None]


def _outcome_of(result: UsageEventResult | None) -> tuple[str | None, str | None, str | None]:
    assert result is not None
    return result.transfer_id, result.code, result.detail
