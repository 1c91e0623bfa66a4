"""Fixtures shared by every tier.

Service tests run on both engines: the `engine` fixture is parametrized by SQLite and
PostgreSQL, so each such test runs twice. Each test works inside a transaction that is rolled
back at its end (services commit to savepoints), so tests never see each other's rows.

PostgreSQL comes from CREDITPOOL_TEST_POSTGRES_URL, or else from a throwaway cluster started
from the machine's binaries. If neither can be had, PostgreSQL tests fail under CI=true and
skip elsewhere with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from creditpool.services import users
from creditpool.storage.database import create_database_engine
from creditpool.storage.migrate import upgrade
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.clock import FakeClock
from tests.support.postgres import PostgresUnavailable, throwaway_cluster

ENGINES = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def postgresql_url() -> Iterator[str]:
    """The URL of a migrated PostgreSQL test database."""
    given = os.environ.get("CREDITPOOL_TEST_POSTGRES_URL")
    if given:
        upgrade(given)
        yield given
        return
    with ExitStack() as stack:
        try:
            url = stack.enter_context(throwaway_cluster())
        except PostgresUnavailable as error:
            if os.environ.get("CI") == "true":
                pytest.fail(f"PostgreSQL is required in CI: {error}")
            pytest.skip(f"PostgreSQL unavailable: {error}")
        upgrade(url)
        yield url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The URL of a migrated SQLite test database file."""
    path: Path = tmp_path_factory.mktemp("sqlite") / "creditpool.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty SQLite database at the newest migration, never written to: a test that needs
    a file of its own copies it (tests/support/databases.py) rather than migrating anew. The
    tests of migrating itself (`creditpool serve`, `migrate`, /readyz) start from empty files."""
    path: Path = tmp_path_factory.mktemp("migrated") / "empty.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session", params=ENGINES)
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """An engine on each supported database in turn."""
    url = request.getfixturevalue(f"{request.param}_url")
    engine = create_database_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 still, with the least work: tests sign up hundreds of people."""
    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024))


@pytest.fixture
def clock() -> FakeClock:
    """A clock standing at 2026-01-01T00:00:00Z until a test moves it."""
    return FakeClock()


@pytest.fixture
def uow(engine: Engine, clock: FakeClock) -> Iterator[UnitOfWork]:
    """A unit of work whose commits are rolled back when the test ends."""
    connection = engine.connect()
    outer = connection.begin()
    factory = sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    yield UnitOfWork(factory, clock)
    outer.rollback()
    connection.close()
