"""`creditpool users set-password`, in-process against a SQLite file of its own."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from creditpool.cli import app
from creditpool.domain.errors import Unauthenticated
from creditpool.services import sessions, users
from creditpool.storage.database import create_database_engine
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.databases import copy_database

EMAIL = "ada@example.test"


@pytest.fixture
def uow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, migrated_sqlite: Path) -> UnitOfWork:
    url = copy_database(migrated_sqlite, tmp_path / "cli.db")
    monkeypatch.setenv("CREDITPOOL_DATABASE_URL", url)
    result = CliRunner().invoke(
        app, ["users", "create", EMAIL, "--name", "Ada", "--password", "the first password"]
    )
    assert result.exit_code == 0, result.output
    return UnitOfWork.for_engine(create_database_engine(url))


def test_set_password_asks_twice_hidden_and_ends_every_session(uow: UnitOfWork) -> None:
    user = users.find_user(uow, EMAIL)
    token = sessions.start_session(uow, user.id, lifetime=timedelta(days=1))

    typed = "a password typed twice\na password typed twice\n"
    result = CliRunner().invoke(app, ["users", "set-password", "ADA@example.test"], input=typed)
    assert result.exit_code == 0, result.output
    assert "a password typed twice" not in result.stdout  # hidden input is not echoed
    users.authenticate(uow, email=EMAIL, password="a password typed twice")
    with pytest.raises(Unauthenticated):
        users.authenticate(uow, email=EMAIL, password="the first password")
    assert sessions.resume_session(uow, token, idle=timedelta(days=1)) is None

    mismatch = "one password here\nanother one there\n"
    result = CliRunner().invoke(app, ["users", "set-password", EMAIL], input=mismatch)
    assert result.exit_code != 0  # the two did not match: asked again, then out of input
    users.authenticate(uow, email=EMAIL, password="a password typed twice")


def test_set_password_generates_one_and_refuses_an_unknown_user(uow: UnitOfWork) -> None:
    result = CliRunner().invoke(app, ["users", "set-password", EMAIL, "--generate"])
    assert result.exit_code == 0, result.output
    printed = result.stdout.strip().rpartition(": ")[2]
    assert len(printed) >= 16
    users.authenticate(uow, email=EMAIL, password=printed)

    result = CliRunner().invoke(app, ["users", "set-password", "nobody@example.test", "--generate"])
    assert result.exit_code == 1
    assert "not_found" in result.stderr
