"""The unit of work: one session, one instant, one transaction.

A service function opens it with `with uow:`, does its work through `uow.session`, reads the
time only as `uow.now` (taken once, from the injected clock) and calls `uow.commit()` last.
Leaving the block without committing rolls everything back, so an error half-way leaves no
half-written transfers.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Protocol

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker


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
    """Opens a session per `with` block; rolls back unless `commit()` was called."""

    def __init__(self, session_factory: Callable[[], Session], clock: Clock | None = None) -> None:
        self._session_factory = session_factory
        self.clock: Clock = clock or SystemClock()
        self._session: Session | None = None
        self._now: datetime | None = None
        # Set when a write answered from its idempotency key instead of running again.
        self.replayed = False

    @classmethod
    def for_engine(cls, engine: Engine, clock: Clock | None = None) -> UnitOfWork:
        """Return a unit of work over new sessions of `engine`."""
        return cls(sessionmaker(bind=engine, expire_on_commit=False), clock)

    def __enter__(self) -> UnitOfWork:
        if self._session is not None:
            raise RuntimeError("a unit of work is not re-entrant: finish the open one first")
        self._session = self._session_factory()
        self._now = self.clock.now()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        session, self._session, self._now = self._session, None, None
        if session is not None:
            session.rollback()
            session.close()

    @property
    def session(self) -> Session:
        """The open session; only inside `with uow:`."""
        if self._session is None:
            raise RuntimeError("the unit of work is not open")
        return self._session

    @property
    def now(self) -> datetime:
        """The instant this unit of work stands at: one clock reading for the whole block."""
        if self._now is None:
            raise RuntimeError("the unit of work is not open")
        return self._now

    @property
    def dialect(self) -> str:
        """The database engine's name: 'sqlite' or 'postgresql'."""
        bind = self.session.get_bind()
        return bind.dialect.name

    def commit(self) -> None:
        """Make the block's writes permanent."""
        self.session.commit()

    def rollback(self) -> None:
        """Drop the block's writes."""
        self.session.rollback()
