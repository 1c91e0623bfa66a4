"""The command line, run in-process against a SQLite file of its own."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from creditpool.cli import app
from creditpool.storage.database import create_database_engine


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("CREDITPOOL_DATABASE_URL", url)
    return url


def invoke(*arguments: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(arguments), input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_upgrade_creates_the_schema(database: str) -> None:
    code, out, _ = invoke("db", "upgrade")
    assert code == 0
    assert "up to date" in out
    with create_database_engine(database).connect() as connection:
        tables = set(
            connection.scalars(text("SELECT name FROM sqlite_master WHERE type = 'table'"))
        )
    assert {"orgs", "accounts", "transfers", "members", "holds"} <= tables


def test_demo_fills_an_empty_database_once_and_the_audit_passes(database: str) -> None:
    invoke("db", "upgrade")
    code, out, _ = invoke("demo")
    assert code == 0
    # The class: 100 bought, 10 to each of 3 students, 4 renders at 1.5: 6 used, 24 in wallets.
    assert "after 4 renders: 70 in the pool, 24 in wallets, 6 used" in out
    # The studio: usage of 7 on an empty wallet tops up two bundles of 5 and leaves 3.
    assert "topped up 10 automatically, 3 left" in out

    code, out, _ = invoke("demo")
    assert code == 0
    assert "adds nothing" in out

    code, out, _ = invoke("orgs", "list")
    assert out.count("org_") == 3

    code, out, _ = invoke("audit")
    assert code == 0
    assert "the books are sound" in out


def test_audit_exits_non_zero_naming_a_breach(database: str) -> None:
    invoke("db", "upgrade")
    invoke("demo")
    with create_database_engine(database).begin() as connection:
        # A balance that no transfer backs: credits out of thin air.
        connection.execute(text("UPDATE accounts SET balance = balance + 1 WHERE id = 'pool'"))
    code, _, err = invoke("audit")
    assert code == 1
    assert "BREACH" in err
    assert "balances sum to" in err
    assert "its transfers sum to" in err


def test_users_are_created_and_made_operators(database: str) -> None:
    invoke("db", "upgrade")
    code, out, _ = invoke(
        "users", "create", "Ada@School.test", "--name", "Ada", stdin="long enough\nlong enough\n"
    )
    assert code == 0
    assert "<ada@school.test>" in out

    code, out, _ = invoke("users", "grant-operator", "ada@school.test")
    assert code == 0
    assert "now an operator" in out

    code, _, err = invoke("users", "grant-operator", "nobody@school.test")
    assert code == 1
    assert "not_found" in err
