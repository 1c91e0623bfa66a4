"""Running a service as one transaction, with idempotency keys and safe retries.

Every write goes through `run_write`: it opens the unit of work, replays the first result when
the caller's idempotency key was seen within 24 hours with the same arguments, refuses the key
with other arguments, otherwise applies the change, stores the key with its result in the same
transaction, and commits. When the state refuses the write (a Conflict or NotFound: too few
credits, a removed member), nothing changes, and the key remembers the refusal so that a retry
answers the same; malformed arguments are refused before any key is looked at. A key raced by
two requests at once lets one win; the other replays its result. PostgreSQL deadlocks and
serialization failures are retried from the start. A record stays small: a result that grows
with the data (a batch's members) is kept in part and rebuilt on replay (`Compaction`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter
from sqlalchemy.exc import DBAPIError, IntegrityError

from creditpool.domain.errors import (
    Conflict,
    CreditpoolError,
    IdempotencyMismatch,
    InvalidInput,
    NotFound,
    error_for_code,
)
from creditpool.storage.schema import IdempotencyRecord
from creditpool.storage.unit_of_work import UnitOfWork

T = TypeVar("T")

IDEMPOTENCY_WINDOW = timedelta(hours=24)
MAX_KEY_LENGTH = 255
_ATTEMPTS = 3
# SQLSTATEs after which the same transaction may simply be run again.
_RETRYABLE = {"40001", "40P01"}


_adapters: dict[object, TypeAdapter[Any]] = {}


@dataclass(frozen=True)
class Compaction(Generic[T]):
    """How an idempotency record keeps a large result small: `keep` returns the JSON to store,
    `rebuild` (run in the replaying transaction) makes the result again from it."""

    keep: Callable[[T], dict[str, Any]]
    rebuild: Callable[[dict[str, Any]], T]


def _adapter(result_type: Any) -> TypeAdapter[Any]:
    adapter = _adapters.get(result_type)
    if adapter is None:
        adapter = _adapters[result_type] = TypeAdapter(result_type)
    return adapter


def fingerprint(operation: str, arguments: Mapping[str, Any]) -> str:
    """Return a digest of an operation and its arguments, independent of key order."""
    text = json.dumps({"op": operation, "args": arguments}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def check_key(key: str | None) -> None:
    """Raise InvalidInput unless the key is absent or 1-255 printable ASCII characters."""
    if key is None:
        return
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not all(" " <= ch <= "~" for ch in key):
        raise InvalidInput("an idempotency key is 1 to 255 printable characters")


def run_write(
    uow: UnitOfWork,
    apply: Callable[[], T],
    *,
    org_id: str,
    actor: str,
    key: str | None,
    operation: str,
    arguments: Mapping[str, Any],
    result_type: type[T],
    replay_as: CreditpoolError | None = None,
    compact: Compaction[T] | None = None,
) -> T:
    """Apply a change in one transaction, at most once per idempotency key.

    `replay_as` is for results that must not be stored, such as a secret shown once: the key
    then remembers this error as the answer to a replay instead of the result. `compact` is for
    results that grow with the data (a batch to 10,000 members): the key keeps its small part
    and a replay rebuilds the rest.
    """
    check_key(key)
    digest = fingerprint(operation, arguments)
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            with uow:
                if key is not None:
                    replayed = _replay(uow, org_id, actor, key, digest, result_type, compact)
                    if replayed is not None:
                        uow.replayed = True
                        return replayed
                result = apply()
                if key is not None:
                    stored = (
                        None
                        if replay_as
                        else compact.keep(result)
                        if compact
                        else _adapter(result_type).dump_python(result, mode="json")
                    )
                    uow.session.add(
                        IdempotencyRecord(
                            org_id=org_id,
                            actor=actor,
                            key=key,
                            fingerprint=digest,
                            result=stored if replay_as is None else {"detail": replay_as.detail},
                            refusal=None if replay_as is None else replay_as.code,
                            created_at=uow.now,
                        )
                    )
                uow.commit()
                return result
        except (Conflict, NotFound) as refusal:
            if key is not None:
                _remember_refusal(uow, org_id, actor, key, digest, refusal)
            raise
        except IntegrityError:
            # A concurrent request stored the same key first: the next attempt replays it.
            if key is None or attempt == _ATTEMPTS:
                raise
        except DBAPIError as error:
            if _sqlstate(error) not in _RETRYABLE or attempt == _ATTEMPTS:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def retrying(transaction: Callable[[], T]) -> T:
    """Run a whole transaction, again if it lost a race it can win on a second try.

    A deadlock or a serialization failure rolled the transaction back; so did a unique key that
    a concurrent transaction took first, which the next run finds taken (and replays).
    """
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            return transaction()
        except IntegrityError:
            if attempt == _ATTEMPTS:
                raise
        except DBAPIError as error:
            if _sqlstate(error) not in _RETRYABLE or attempt == _ATTEMPTS:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _remember_refusal(
    uow: UnitOfWork, org_id: str, actor: str, key: str, digest: str, refusal: CreditpoolError
) -> None:
    """Store the refusal under the key, in a transaction of its own (the write rolled back)."""
    try:
        with uow:
            uow.session.add(
                IdempotencyRecord(
                    org_id=org_id,
                    actor=actor,
                    key=key,
                    fingerprint=digest,
                    result={"detail": refusal.detail},
                    refusal=refusal.code,
                    created_at=uow.now,
                )
            )
            uow.commit()
    except IntegrityError:
        pass  # a concurrent request stored its outcome under this key first; it stands


def _replay(
    uow: UnitOfWork,
    org_id: str,
    actor: str,
    key: str,
    digest: str,
    result_type: type[T],
    compact: Compaction[T] | None,
) -> T | None:
    record = uow.session.get(IdempotencyRecord, (org_id, actor, key))
    if record is None:
        return None
    if record.created_at <= uow.now - IDEMPOTENCY_WINDOW:
        # Past the window the key is free again; the old record only records history no more.
        uow.session.delete(record)
        uow.session.flush()
        return None
    if record.fingerprint != digest:
        raise IdempotencyMismatch(f"the idempotency key {key!r} was used with other arguments")
    if record.refusal is not None:
        uow.replayed = True
        raise error_for_code(record.refusal, str(record.result.get("detail", "")))
    if compact is not None:
        return compact.rebuild(record.result)
    result: T = _adapter(result_type).validate_python(record.result)
    return result


def _sqlstate(error: DBAPIError) -> str | None:
    code = getattr(error.orig, "sqlstate", None)
    return code if isinstance(code, str) else None
