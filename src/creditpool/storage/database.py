"""Engines for the two supported databases.

SQLite is the embedded default: a file in WAL mode, with a busy timeout, foreign keys on, and
every transaction started with BEGIN IMMEDIATE so that a writer takes the lock at its start
instead of failing half-way when another writer got there first. PostgreSQL is the production
engine, reached with psycopg 3; debits there are conditional updates under READ COMMITTED.

When PostgreSQL goes away (a restart, a crash, a network cut), requests must fail fast and the
service must come back by itself: connecting gives up after a few seconds; a connection found
dead drops the whole pool, and the request's first statement and each write are run again once
on a new connection (no ping as a connection leaves the pool: that would cost a round trip on
every request); `is_unavailable` tells such failures apart from errors of the request, so that
the interfaces answer "try again" instead of a crash.
"""

from __future__ import annotations

from typing import Any

import psycopg
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

SQLITE_BUSY_TIMEOUT_MS = 30_000
# A server that does not answer within this is treated as down (psycopg's floor is 2 s).
POSTGRES_CONNECT_TIMEOUT_SECONDS = 5
# SQLSTATEs (or their classes) that say the server cannot serve now, not that the request is
# wrong: a connection exception (08), a server going down or starting up (57P01-57P03), or
# one with every connection taken (53300).
_UNAVAILABLE_STATES = ("08", "57P01", "57P02", "57P03", "53300")


def normalise_url(url: str) -> str:
    """Return the URL with the psycopg 3 driver named for PostgreSQL."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def create_database_engine(url: str, **options: Any) -> Engine:
    """Return an engine for a SQLite or PostgreSQL URL, configured as creditpool needs."""
    url = normalise_url(url)
    if make_url(url).get_backend_name() == "sqlite":
        return _sqlite_engine(url, **options)
    # Errors and their logs never show a statement's values: they can be secrets (a mail's link).
    options.setdefault("hide_parameters", True)
    connect_args = {"connect_timeout": POSTGRES_CONNECT_TIMEOUT_SECONDS}
    connect_args |= options.pop("connect_args", {})
    engine = create_engine(url, connect_args=connect_args, **options)
    _note_writes(engine)
    return engine


# Whether the transaction of a connection has sent anything but SELECTs: a transaction that
# only read ends as well with COMMIT as with ROLLBACK, and psycopg forgets every prepared
# statement of a connection (DEALLOCATE ALL) at each ROLLBACK, so that the next statements are
# parsed and planned again. The unit of work commits a block that only read instead.
_WROTE = "creditpool.wrote"


def _note_writes(engine: Engine) -> None:
    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.info[_WROTE] = False

    @event.listens_for(engine, "before_cursor_execute")
    def _on_execute(connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not statement.startswith("SELECT"):
            connection.info[_WROTE] = True


def note_write(connection: Connection) -> None:
    """Record that the connection's transaction wrote, by a way SQLAlchemy does not see."""
    connection.info[_WROTE] = True


def only_read(connection: Connection) -> bool:
    """Whether the connection's transaction has only read (sent nothing but SELECTs) as far as
    its engine tells; False when it cannot tell (SQLite's, which gains nothing by knowing)."""
    return connection.info.get(_WROTE) is False


def is_unavailable(error: BaseException) -> bool:
    """Whether an error (or what caused it) says the database cannot be reached right now:
    down, restarting, full, or the connection dropped; not a fault of the request."""
    seen: BaseException | None = error
    for _ in range(5):  # an error raised while handling another: look at the first one too
        if seen is None:
            return False
        if isinstance(seen, DBAPIError) and seen.connection_invalidated:
            return True
        cause = seen.orig if isinstance(seen, DBAPIError) else seen
        if isinstance(cause, psycopg.InterfaceError):
            return True  # a connection already closed or broken
        if isinstance(cause, psycopg.OperationalError):
            # No SQLSTATE: the client could not reach the server or lost it mid-way.
            state = cause.sqlstate
            if state is None or state.startswith(_UNAVAILABLE_STATES):
                return True
        seen = seen.__cause__ or seen.__context__
    return False


def _sqlite_engine(url: str, **options: Any) -> Engine:
    if make_url(url).database in (None, "", ":memory:"):
        # One in-memory database must be one connection, or each connection sees its own.
        options.setdefault("poolclass", NullPool)
    options.setdefault("hide_parameters", True)  # as for PostgreSQL: values can be secrets
    engine = create_engine(url, connect_args={"check_same_thread": False}, **options)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see "begin" below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
