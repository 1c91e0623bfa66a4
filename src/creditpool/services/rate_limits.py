"""Rate limits: counters in fixed windows, shared by every process serving the database.

Each counter is one RateLimit row, moved by one atomic upsert (INSERT ... ON CONFLICT DO UPDATE
... RETURNING, on SQLite 3.35+ and PostgreSQL) in a short transaction of its own, so that two
server processes sharing a database count together and a request's later failure never rolls a
count back. A window starts at a multiple of its length since the Unix epoch; the first hit
after it ends starts the count again. Buckets are SHA-256 digests of what they count ("an
e-mail address", "a client address"), so the table keeps no address readable.

Two limits use them:

- failed password checks per e-mail address (`Limits.failed_passwords`, 10 in 15 minutes by
  default), counted per client address, and ten times that per e-mail address from everywhere
  together (`FailedPasswords`). Each attempt counts before any password is hashed (so guesses
  sent at the same moment cannot all slip through) and a correct password forgives it. An
  attacker guessing from one client locks only that client out of that address; to lock the
  person out everywhere takes ten times as many failures each window, a lock-out lasts at most
  the rest of its window, and a password reset lifts it at once;
- anonymous requests per client address (`Limits.anonymous`, 60 a minute): signing in and up,
  password resets, joining and accepting invitations.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from creditpool.config import Config
from creditpool.domain.errors import RateLimited
from creditpool.services.transactions import run_write
from creditpool.storage.schema import RateLimit
from creditpool.storage.unit_of_work import UnitOfWork

ANONYMOUS_WINDOW = timedelta(minutes=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Limit:
    """At most `hits` in each fixed window of `window`."""

    hits: int
    window: timedelta


@dataclass(frozen=True)
class Limits:
    """The limits a server applies; None where a limit is off."""

    failed_passwords: Limit | None = None
    anonymous: Limit | None = None

    @classmethod
    def from_config(cls, config: Config) -> Limits:
        """Return the limits the configuration asks for (none when rate limits are off)."""
        if not config.rate_limits:
            return cls()
        return cls(
            failed_passwords=Limit(config.failed_password_limit, config.failed_password_window),
            anonymous=Limit(config.anonymous_limit_per_minute, ANONYMOUS_WINDOW),
        )


# A person's address, from every client together, may see this many times the per-client limit.
ADDRESS_CAP_FACTOR = 10


@dataclass(frozen=True)
class FailedPasswords:
    """The limit on failed password checks, for a caller at one client address."""

    limit: Limit
    client: str

    def buckets(self, email: str) -> list[tuple[str, Limit]]:
        """The counters one attempt on `email` adds to: this client's, then everyone's."""
        address = email.strip().lower()
        everyone = Limit(self.limit.hits * ADDRESS_CAP_FACTOR, self.limit.window)
        return [
            (bucket_of("failed-password", f"{address}\x00{self.client}"), self.limit),
            (address_bucket(address), everyone),
        ]


def address_bucket(email: str) -> str:
    """The counter of failed password checks on an e-mail address from every client."""
    return bucket_of("failed-password", email.strip().lower())


# Windows older than this are forgotten by the worker: no limit here has a longer one.
LONGEST_WINDOW = max(Config.failed_password_window, ANONYMOUS_WINDOW)


def bucket_of(kind: str, value: str) -> str:
    """Return the bucket that counts `kind` for `value`: a digest, so no address is readable."""
    return hashlib.sha256(f"{kind}\x00{value}".encode()).hexdigest()


def _window_start(now: datetime, window: timedelta) -> datetime:
    length = window.total_seconds()
    elapsed = (now - _EPOCH).total_seconds()
    return _EPOCH + timedelta(seconds=math.floor(elapsed / length) * length)


def _seconds_left(now: datetime, started_at: datetime, window: timedelta) -> int:
    return max(1, math.ceil((started_at + window - now).total_seconds()))


def _as_utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes for what was stored as UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def hit(uow: UnitOfWork, bucket: str, limit: Limit) -> int:
    """Count one hit in its own transaction; RateLimited if it goes over the limit.

    Returns the number of hits in the current window, this one included.
    """

    def count() -> tuple[int, datetime, datetime]:
        started_at = _window_start(uow.now, limit.window)
        insert = postgresql.insert if uow.dialect == "postgresql" else sqlite.insert
        first = insert(RateLimit).values(bucket=bucket, window_started_at=started_at, hits=1)
        same_window = RateLimit.window_started_at == first.excluded.window_started_at
        upsert = first.on_conflict_do_update(
            index_elements=[RateLimit.bucket],
            set_={
                # A new window starts the count again; the same window adds one.
                "hits": case((same_window, RateLimit.hits + 1), else_=1),
                "window_started_at": first.excluded.window_started_at,
            },
        ).returning(RateLimit.hits)
        return int(uow.session.execute(upsert).scalar_one()), started_at, uow.now

    hits, started_at, now = run_write(uow, count)
    if hits > limit.hits:
        raise RateLimited(
            "too many attempts: try again later",
            retry_after=_seconds_left(now, started_at, limit.window),
        )
    return hits


def check(uow: UnitOfWork, bucket: str, limit: Limit) -> None:
    """Raise RateLimited if the bucket already holds `limit.hits` in its current window."""
    with uow:
        started_at = _window_start(uow.now, limit.window)
        row = uow.session.execute(
            select(RateLimit.hits, RateLimit.window_started_at).where(RateLimit.bucket == bucket)
        ).one_or_none()
        now = uow.now
    if row is None:
        return
    hits, row_started_at = row._tuple()
    if _as_utc(row_started_at) == started_at and hits >= limit.hits:
        raise RateLimited(
            "too many failed attempts: try again later",
            retry_after=_seconds_left(now, started_at, limit.window),
        )


def forgive(uow: UnitOfWork, bucket: str) -> None:
    """Forget a bucket's count (a correct password clears the failures before it)."""
    run_write(
        uow,
        lambda: uow.session.execute(
            update(RateLimit).where(RateLimit.bucket == bucket).values(hits=0)
        ),
    )


def purge_old_windows(uow: UnitOfWork, older_than: timedelta = LONGEST_WINDOW) -> int:
    """Delete counters whose window started more than `older_than` ago; return how many."""

    def purge() -> int:
        result = uow.session.execute(
            delete(RateLimit).where(RateLimit.window_started_at < uow.now - older_than)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    return run_write(uow, purge)
