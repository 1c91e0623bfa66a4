"""The one path every write takes: one transaction, idempotency keys, safe retries.

`run_write` opens the unit of work, applies the change and commits; nothing in the services
commits but through it. PostgreSQL deadlocks and serialization failures are run again from the
start, and so is a transaction whose connection turned out dead before its commit was sent
(the pool does not ping connections). A request's unit of work may already hold an open
transaction (the caller's authorization): the first attempt joins it, a retry starts afresh.

With an idempotency key, the first result is replayed when the caller's key was seen within
its window with the same arguments, the key is refused with other arguments, and otherwise the
key is stored with its result in the same transaction (services.idempotency keeps them). When
the state refuses the write (a Conflict or NotFound: too few credits, a removed member),
nothing changes, and the key remembers the refusal so that a retry answers the same; malformed
arguments are refused before any key is looked at. A key raced by two requests at once lets one
win; the other replays its result. A record stays small: a result that grows with the data (a
batch's members) is kept in part and rebuilt on replay (`Compaction`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
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
from creditpool.services import idempotency
from creditpool.storage.unit_of_work import UnitOfWork

T = TypeVar("T")

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
    key: str | None = None,
    org_id: str = "",
    actor: str = "",
    operation: str = "",
    arguments: Mapping[str, Any] | None = None,
    result_type: type[T] | None = None,
    replay_as: CreditpoolError | None = None,
    compact: Compaction[T] | None = None,
    stores_keys: bool = False,
) -> T:
    """Apply a change in one transaction and commit it, at most once per idempotency key.

    Without a key, only `apply` is needed. A key is kept per `org_id` and `actor`, for this
    `operation` with these `arguments`; `result_type` says how its result is stored and read
    back. `replay_as` is for results that must not be stored, such as a secret shown once: the
    key then remembers this error as the answer to a replay instead of the result. `compact` is
    for results that grow with the data (a batch to 10,000 members): the key keeps its small
    part and a replay rebuilds the rest. `stores_keys` says that `apply` records keys of its
    own (a batch's usage events), so that one a concurrent write stored first is found and
    replayed by a second attempt.
    """
    check_key(key)
    if key is not None and (not operation or (result_type is None and compact is None)):
        raise TypeError("a write under an idempotency key names its operation and result type")
    digest = "" if key is None else fingerprint(operation, arguments or {})
    for attempt in range(1, _ATTEMPTS + 1):
        committing = False
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
                        {"detail": replay_as.detail}
                        if replay_as
                        else compact.keep(result)
                        if compact
                        else _adapter(result_type).dump_python(result, mode="json")
                    )
                    idempotency.record_request_key(
                        uow,
                        org_id,
                        actor,
                        key,
                        fingerprint=digest,
                        result=stored,
                        refusal=None if replay_as is None else replay_as.code,
                    )
                uow.prepare_commit()
                committing = True
                uow.commit()
                return result
        except (Conflict, NotFound) as refusal:
            # A refusal replayed from the key is stored already.
            if key is not None and not uow.replayed:
                _remember_refusal(uow, org_id, actor, key, digest, refusal)
            raise
        except IntegrityError:
            # A concurrent write stored the same key first: the next attempt replays it.
            if not (key is not None or stores_keys) or attempt == _ATTEMPTS:
                raise
        except DBAPIError as error:
            # A connection found dead before the commit was sent (the database restarted):
            # nothing happened, so run it all again on a new one. Lost during the commit, the
            # outcome is unknown: the caller retries with its idempotency key.
            dropped = error.connection_invalidated and not committing
            if not (dropped or _sqlstate(error) in _RETRYABLE) or attempt == _ATTEMPTS:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _remember_refusal(
    uow: UnitOfWork, org_id: str, actor: str, key: str, digest: str, refusal: CreditpoolError
) -> None:
    """Store the refusal under the key, in a transaction of its own (the write rolled back)."""

    def remember() -> None:
        idempotency.record_request_key(
            uow,
            org_id,
            actor,
            key,
            fingerprint=digest,
            result={"detail": refusal.detail},
            refusal=refusal.code,
        )

    # A concurrent request may have stored its outcome under this key first: that one stands.
    with suppress(IntegrityError):
        run_write(uow, remember)


def _replay(
    uow: UnitOfWork,
    org_id: str,
    actor: str,
    key: str,
    digest: str,
    result_type: type[T] | None,
    compact: Compaction[T] | None,
) -> T | None:
    record = idempotency.request_key(uow, org_id, actor, key)
    if record is None:
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
