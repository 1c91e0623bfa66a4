"""Which database failures mean "unavailable, try again", and pooled connections that died.

`is_unavailable` decides between 503 `unavailable` (the database is out of reach: retry) and
500 (something else went wrong); a pooled connection that died meanwhile is replaced without
failing the request that checks it out.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import DBAPIError

from creditpool.storage.database import create_database_engine, is_unavailable
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.server import free_port


def _failure(engine: Engine, statement: str) -> DBAPIError:
    with pytest.raises(DBAPIError) as caught, engine.connect() as connection:
        connection.execute(text(statement))
    return caught.value


def test_a_database_nobody_listens_on_is_unavailable_at_once() -> None:
    engine = create_database_engine(f"postgresql://creditpool@127.0.0.1:{free_port()}/nothing")
    started = time.monotonic()
    refused = _failure(engine, "SELECT 1")
    assert time.monotonic() - started < 2.0
    engine.dispose()
    assert is_unavailable(refused), refused


def test_a_failing_statement_is_not_unavailable(durable_engine: Engine) -> None:
    assert not is_unavailable(_failure(durable_engine, "SELECT 1 / 0"))
    assert not is_unavailable(_failure(durable_engine, "SELECT * FROM no_such_table"))
    timed_out = _failure(durable_engine, "SET LOCAL statement_timeout = 1; SELECT pg_sleep(1)")
    assert not is_unavailable(timed_out), timed_out  # the query was slow; the server is there


def test_a_connection_killed_mid_transaction_is_unavailable_and_the_pool_replaces_it(
    durable_engine: Engine,
) -> None:
    with durable_engine.connect() as connection:
        pid = connection.scalar(select(func.pg_backend_pid()))
        with durable_engine.connect() as other:
            assert other.scalar(select(func.pg_terminate_backend(pid))) is True
        with pytest.raises(DBAPIError) as dropped:
            connection.execute(text("SELECT 1"))
    assert is_unavailable(dropped.value), dropped.value

    # A connection that dies while it waits in the pool fails the first statement that uses
    # it; that statement runs again on a new connection (the pool pings no connection).
    with durable_engine.connect() as connection:
        pid = connection.scalar(select(func.pg_backend_pid()))
    with durable_engine.connect() as other:
        assert other.scalar(select(func.pg_terminate_backend(pid))) is True
    uow = UnitOfWork.for_engine(durable_engine)
    with uow:
        assert uow.execute_first(select(func.pg_backend_pid())).scalar() != pid
