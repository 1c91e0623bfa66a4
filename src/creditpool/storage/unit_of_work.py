"""The unit of work: one session, one instant, one transaction.

A service reads in a `with uow:` block and writes through `services.transactions.run_write`,
which opens the block and commits it; either way it reads the time only as `uow.now` (taken
once, from the injected clock). Leaving the block without committing undoes whatever it changed,
so an error half-way leaves no half-written transfers. (A block that changed nothing ends with
COMMIT instead of ROLLBACK: the same for a read, and psycopg keeps its prepared statements.)

An HTTP request runs as one transaction (`for_request`): the caller is identified and its
rights checked with `begin()`, which opens the transaction and leaves it open, and the
service's block then joins that transaction instead of opening another. A request therefore
costs one connection checkout and one BEGIN/COMMIT, whatever the number of steps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol

from sqlalchemy import Engine, Executable, Result
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from creditpool.storage.database import only_read


def _only_read(session: Session) -> bool:
    """Whether a session's transaction has only read: no object changed, nothing but SELECTs
    sent (as far as the engine tells)."""
    if session.new or session.dirty or session.deleted:
        return False
    return only_read(session.connection())


class Clock(Protocol):
    """Where services read the time; tests step it instead of sleeping."""

    def now(self) -> datetime:
        """Return the current instant, timezone-aware UTC."""
        ...


class SystemClock:
    """The wall clock."""

    def now(self) -> datetime:
        """Return the current instant in UTC."""
        return datetime.now(UTC)


class UnitOfWork:
    """Opens a session per `with` block (a request's keeps one for all its blocks); rolls back
    unless `commit()` was called."""

    def __init__(
        self,
        session_factory: Callable[[], Session],
        clock: Clock | None = None,
        *,
        for_request: bool = False,
    ) -> None:
        self._session_factory = session_factory
        self.clock: Clock = clock or SystemClock()
        self._session: Session | None = None
        self._now: datetime | None = None
        # A request's unit of work keeps one session from `begin()` to `close()`, and its first
        # block joins the transaction `begin()` opened.
        self._for_request = for_request
        self._open = False  # a block is running
        self._joinable = False  # begin() opened a transaction the next block joins
        # Small writes that ride along with whatever the transaction commits, run just
        # before the commit so that the rows they lock are held for the least time.
        self._before_commit: list[Callable[[Session], None]] = []
        # Set when a write answered from its idempotency key instead of running again.
        self.replayed = False

    @classmethod
    def for_engine(cls, engine: Engine, clock: Clock | None = None) -> UnitOfWork:
        """Return a unit of work over new sessions of `engine`."""
        return cls(sessionmaker(bind=engine, expire_on_commit=False), clock)

    def begin(self) -> UnitOfWork:
        """Open the request's transaction before any block, for the steps that come before the
        service (who is calling, what it may do); the next block joins it."""
        if not self._for_request:
            raise RuntimeError("only a request's unit of work begins before its block")
        if not self._joinable:
            self._start()
            self._joinable = True
        return self

    def _start(self) -> None:
        """Have a session ready for a new transaction, and read the clock for it."""
        if self._session is None:
            self._session = self._session_factory()
        self._now = self.clock.now()

    @contextmanager
    def preparing(self) -> Iterator[UnitOfWork]:
        """A step that comes before the service (who calls, what it may do): in a request it
        opens the transaction the service's block then joins; elsewhere, a block of its own."""
        if self._for_request:
            yield self.begin()
        else:
            with self:
                yield self

    def before_commit(self, write: Callable[[Session], None]) -> None:
        """Run `write` just before this transaction commits (a key's last use). A block that
        only reads commits it alone, and nothing else the block did. Dropped if the transaction
        rolls back."""
        self._before_commit.append(write)

    def __enter__(self) -> UnitOfWork:
        if self._open:
            raise RuntimeError("a unit of work is not re-entrant: finish the open one first")
        if self._joinable:
            self._joinable = False  # joined: the block owns the transaction from here
        else:
            self._start()
        self._open = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        session = self._session
        try:
            if session is not None and exc_type is None and session.in_transaction():
                # The block only read (a write commits through run_write, which runs the hooks
                # itself). If it changed anything by mistake, that is dropped: the hooks'
                # writes commit alone. If it did not, COMMIT ends it as ROLLBACK would, and
                # keeps the connection's prepared statements (see storage/database.py).
                hooks = list(self._before_commit)
                if not _only_read(session):
                    session.rollback()
                    if not hooks:
                        return
                for write in hooks:
                    write(session)
                session.commit()
                # As ROLLBACK would: the next block of the request reads its objects afresh.
                session.expire_all()
        finally:
            self._open = False
            self._before_commit.clear()
            if session is not None:
                session.rollback()
                if not self._for_request:
                    self._session, self._now = None, None

    def close(self) -> None:
        """End the request: roll back what no block committed and give the connection back."""
        session, self._session, self._now = self._session, None, None
        self._joinable = False
        self._before_commit.clear()
        if session is not None:
            session.close()

    def execute_first(
        self, statement: Executable, parameters: dict[str, Any] | None = None
    ) -> Result[Any]:
        """Run the transaction's first statement; if its connection turns out to have died in
        the pool (the database restarted), run it again on a new one. Connections are not
        pinged as they leave the pool: this one retry is what replaces the ping."""
        # On the session's connection: a Core statement needs none of the ORM's execution.
        try:
            return self.session.connection().execute(statement, parameters)
        except DBAPIError as error:
            if not error.connection_invalidated:
                raise
            # Nothing ran before this statement; the pool has let go of its dead connections.
            self.session.rollback()
            return self.session.connection().execute(statement, parameters)

    @property
    def pending(self) -> bool:
        """Whether closing would have to talk to the database (a transaction is still open)."""
        return self._session is not None and self._session.in_transaction()

    @property
    def session(self) -> Session:
        """The open session; only inside `with uow:` (or after a request's `begin()`)."""
        if self._session is None or not (self._open or self._joinable):
            raise RuntimeError("the unit of work is not open")
        return self._session

    @property
    def now(self) -> datetime:
        """The instant this unit of work stands at: one clock reading for the whole
        transaction."""
        if self._now is None or not (self._open or self._joinable):
            raise RuntimeError("the unit of work is not open")
        return self._now

    @property
    def dialect(self) -> str:
        """The database engine's name: 'sqlite' or 'postgresql'."""
        bind = self.session.get_bind()
        return bind.dialect.name

    def prepare_commit(self) -> None:
        """Run the writes that ride along with this transaction (see `before_commit`)."""
        session = self.session
        for write in self._before_commit:
            write(session)
        self._before_commit.clear()

    def commit(self) -> None:
        """Make the block's writes permanent."""
        self.prepare_commit()
        self.session.commit()

    def rollback(self) -> None:
        """Drop the block's writes."""
        self.session.rollback()
