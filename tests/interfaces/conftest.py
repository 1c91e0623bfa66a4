"""The command line against a real database of each engine, in-process through Typer's runner.

A command opens its own engine on CREDITPOOL_DATABASE_URL and commits, so nothing is rolled
back: on SQLite each test has a file of its own (a copy of a migrated empty one); on PostgreSQL
the session's migrated test database is shared, and each test makes its own org and people
(unique addresses).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from creditpool.cli import app
from creditpool.storage.database import create_database_engine
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.databases import copy_database

PUBLIC_URL = "http://creditpool.test"


@dataclass(frozen=True)
class Ran:
    """What a command did: its exit code and its two streams."""

    code: int
    out: str
    err: str


def run(*arguments: str) -> Ran:
    """Run `creditpool ARGUMENTS` in-process; its output and exit code."""
    result = CliRunner().invoke(app, list(arguments))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Ran(result.exit_code, result.stdout, result.stderr)


def unique_email(name: str) -> str:
    """An address no other test uses, in the shared PostgreSQL database too."""
    return f"{name}-{uuid.uuid4().hex[:10]}@school.test"


@pytest.fixture(params=["sqlite", "postgresql"])
def cli_database(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    migrated_sqlite: Path,
) -> Iterator[Engine]:
    """A migrated database of each engine that the command line uses; an engine on it for
    the test to set up and check with."""
    if request.param == "sqlite":
        url = copy_database(migrated_sqlite, tmp_path / "cli.db")
    else:
        url = request.getfixturevalue("postgresql_url")
    monkeypatch.setenv("CREDITPOOL_DATABASE_URL", url)
    monkeypatch.setenv("CREDITPOOL_PUBLIC_URL", PUBLIC_URL)
    for name in ("CREDITPOOL_OPERATOR_KEY", "CREDITPOOL_SMTP_URL"):
        monkeypatch.delenv(name, raising=False)
    engine = create_database_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def cli_uow(cli_database: Engine) -> UnitOfWork:
    """A unit of work on the command line's database, whose writes commit."""
    return UnitOfWork.for_engine(cli_database)
