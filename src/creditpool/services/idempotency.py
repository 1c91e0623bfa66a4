"""The idempotency store: every key a caller sent so that a retry changes nothing more.

Two kinds of key live here, each with its rule of retention:

- a request's Idempotency-Key (IdempotencyRecord), per org, caller and key: a retry within
  REQUEST_KEY_WINDOW (24 hours) answers the first outcome, result or refusal; after it the key
  is free again;
- a batch usage event's key (UsageEvent), per org: kept USAGE_KEY_RETENTION (30 days, as the
  API promises), and an event under a key seen before answers its first result.

Both are read and written inside the caller's open transaction, so a key is stored with the
change it guards or not at all; `forget_expired_keys` (the worker's) deletes both kinds once
past their time.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, delete, insert, select

from creditpool.services import transactions
from creditpool.services.ledger import chunks
from creditpool.storage.schema import IdempotencyRecord, UsageEvent, table_of
from creditpool.storage.unit_of_work import UnitOfWork

REQUEST_KEY_WINDOW = timedelta(hours=24)
USAGE_KEY_RETENTION = timedelta(days=30)


def request_key(uow: UnitOfWork, org_id: str, actor: str, key: str) -> IdempotencyRecord | None:
    """Return what a request's key recorded within its window, or None if the key is free.

    A record past the window is deleted here, in the open transaction, so the key can be used
    again at once whether or not the worker has purged it yet.
    """
    record = uow.session.get(IdempotencyRecord, (org_id, actor, key))
    if record is None:
        return None
    if record.created_at <= uow.now - REQUEST_KEY_WINDOW:
        uow.session.delete(record)
        uow.session.flush()
        return None
    return record


def record_request_key(
    uow: UnitOfWork,
    org_id: str,
    actor: str,
    key: str,
    *,
    fingerprint: str,
    result: dict[str, Any] | None,
    refusal: str | None = None,
) -> None:
    """Store a request key's outcome in the open transaction: a result, or the code of the
    refusal (with `result` holding its detail)."""
    uow.session.add(
        IdempotencyRecord(
            org_id=org_id,
            actor=actor,
            key=key,
            fingerprint=fingerprint,
            result=result,
            refusal=refusal,
            created_at=uow.now,
        )
    )


@dataclass(frozen=True)
class UsageOutcome:
    """What a usage event under a key came to: its transfer, or the code of its refusal."""

    key: str
    member_id: str
    transfer_id: str | None
    code: str | None = None
    detail: str | None = None


_usage_events = table_of(UsageEvent)
_USAGE_KEYS = select(
    _usage_events.c.key,
    _usage_events.c.member_id,
    _usage_events.c.transfer_id,
    _usage_events.c.code,
    _usage_events.c.detail,
).where(
    _usage_events.c.org_id == bindparam("org"),
    _usage_events.c.key.in_(bindparam("keys", expanding=True)),
)


def usage_keys(uow: UnitOfWork, org_id: str, keys: Collection[str]) -> dict[str, UsageOutcome]:
    """Return the first outcome of each usage event key seen before (new keys are absent)."""
    connection = uow.session.connection()
    seen: dict[str, UsageOutcome] = {}
    for part in chunks(sorted(keys)):
        for row in connection.execute(_USAGE_KEYS, {"org": org_id, "keys": list(part)}):
            seen[row.key] = UsageOutcome(*row)
    return seen


def record_usage_keys(uow: UnitOfWork, org_id: str, outcomes: Sequence[UsageOutcome]) -> None:
    """Store usage events' outcomes under their keys in the open transaction, in one statement.
    A key a concurrent batch stored first fails it (IntegrityError): the batch runs again and
    finds it."""
    if not outcomes:
        return
    rows = [
        {
            "org_id": org_id,
            "key": outcome.key,
            "member_id": outcome.member_id[:255],
            "code": outcome.code,
            "detail": None if outcome.detail is None else outcome.detail[:500],
            "transfer_id": outcome.transfer_id,
            "created_at": uow.now,
        }
        for outcome in outcomes
    ]
    uow.session.connection().execute(insert(_usage_events), rows)


def forget_expired_keys(uow: UnitOfWork) -> int:
    """Delete request keys past their window and usage keys past their retention, in one
    transaction; return how many. For the worker."""

    def forget() -> int:
        now = uow.now
        requests = uow.session.execute(
            delete(IdempotencyRecord).where(IdempotencyRecord.created_at < now - REQUEST_KEY_WINDOW)
        )
        usage = uow.session.execute(
            delete(UsageEvent).where(UsageEvent.created_at < now - USAGE_KEY_RETENTION)
        )
        return int(requests.rowcount) + int(usage.rowcount)  # type: ignore[attr-defined]

    return transactions.run_write(uow, forget)
