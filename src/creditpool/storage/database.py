"""Engines for the two supported databases.

SQLite is the embedded default: a file in WAL mode, with a busy timeout, foreign keys on, and
every transaction started with BEGIN IMMEDIATE so that a writer takes the lock at its start
instead of failing half-way when another writer got there first. PostgreSQL is the production
engine, reached with psycopg 3; debits there are conditional updates under READ COMMITTED.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

SQLITE_BUSY_TIMEOUT_MS = 30_000


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
    options.setdefault("pool_pre_ping", True)
    return create_engine(url, **options)


def _sqlite_engine(url: str, **options: Any) -> Engine:
    if make_url(url).database in (None, "", ":memory:"):
        # One in-memory database must be one connection, or each connection sees its own.
        options.setdefault("poolclass", NullPool)
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
