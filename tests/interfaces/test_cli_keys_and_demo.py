"""The command line's operator keys and operators, a configuration it refuses to start with, and
the demo's generated passwords; in-process on a SQLite file of its own, and `serve` as a real
process where the exit code is the point."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from creditpool.cli import app
from creditpool.domain.errors import Unauthenticated
from creditpool.services import auth, users
from creditpool.storage.database import create_database_engine
from creditpool.storage.schema import User
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.server import console_script

ACCOUNT_LINE = re.compile(r"^(\S+@\S+)  (\S+)$", re.MULTILINE)


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("CREDITPOOL_DATABASE_URL", url)
    monkeypatch.delenv("CREDITPOOL_OPERATOR_KEY", raising=False)
    return url


def invoke(*arguments: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(arguments))
    return result.exit_code, result.stdout, result.stderr


def _unit_of_work(url: str) -> UnitOfWork:
    return UnitOfWork.for_engine(create_database_engine(url))


def test_keys_are_listed_without_secrets_and_a_revoked_one_is_refused(database: str) -> None:
    invoke("db", "upgrade")
    _, created, _ = invoke("keys", "create", "--operator", "--name", "billing")
    key_id, secret = created.strip().split(": ", 1)
    uow = _unit_of_work(database)
    assert auth.identify(uow, secret, configured_operator_key=None).operator

    code, listed, _ = invoke("keys", "list")
    assert code == 0
    assert re.fullmatch(rf"{key_id}  'billing'  created \S+Z  last used \S+Z  live\n", listed), (
        listed
    )
    assert secret.split(".")[-1] not in listed

    code, out, _ = invoke("keys", "revoke", key_id)
    assert code == 0
    assert "no longer works" in out
    with pytest.raises(Unauthenticated):
        auth.identify(uow, secret, configured_operator_key=None)
    _, listed, _ = invoke("keys", "list")
    assert re.search(rf"^{key_id}  'billing' .* revoked \S+Z$", listed, re.MULTILINE), listed

    code, _, err = invoke("keys", "revoke", "opk_nothing")
    assert code == 1
    assert "not_found" in err


def test_operator_status_is_taken_back(database: str) -> None:
    invoke("db", "upgrade")
    uow = _unit_of_work(database)
    users.create_user(uow, email="vera@vendor.test", name="Vera", password="long enough")
    invoke("users", "grant-operator", "vera@vendor.test")
    assert users.find_user(uow, "vera@vendor.test").is_operator

    code, out, _ = invoke("users", "revoke-operator", "Vera@Vendor.test")
    assert code == 0
    assert "no longer an operator" in out
    assert not users.find_user(uow, "vera@vendor.test").is_operator
    code, _, err = invoke("users", "revoke-operator", "nobody@vendor.test")
    assert code == 1
    assert "not_found" in err


def test_a_short_operator_key_stops_every_command_with_a_message_and_code_2(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CREDITPOOL_OPERATOR_KEY", "x" * 31)
    for command in (["db", "upgrade"], ["orgs", "list"], ["keys", "list"], ["demo"]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 2, (command, result.output)
        assert "CREDITPOOL_OPERATOR_KEY must be at least 32 characters" in result.stderr
        assert isinstance(result.exception, SystemExit)  # an exit, not an error raised
    assert not Path(database.removeprefix("sqlite:///")).exists()  # nothing was touched
    monkeypatch.setenv("CREDITPOOL_OPERATOR_KEY", "x" * 32)
    assert CliRunner().invoke(app, ["db", "upgrade"]).exit_code == 0


def test_serve_with_a_short_operator_key_exits_2_without_a_traceback(tmp_path: Path) -> None:
    database = tmp_path / "served.db"
    done = subprocess.run(
        [console_script(), "serve", "--port", "1"],
        env={
            "PATH": "/usr/bin:/bin",
            "CREDITPOOL_DATABASE_URL": f"sqlite:///{database}",
            "CREDITPOOL_OPERATOR_KEY": "too-short-a-key",
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "CREDITPOOL_OPERATOR_KEY must be at least 32 characters" in done.stderr
    assert "Traceback" not in done.stderr
    assert not database.exists()


def test_the_demo_prints_a_fresh_password_for_each_confirmed_account(database: str) -> None:
    code, out, _ = invoke("demo")
    assert code == 0
    assert "demo-password" not in out
    accounts = dict(ACCOUNT_LINE.findall(out))
    assert "operator@demo.creditpool.test" in accounts
    assert "iris@demo.creditpool.test" in accounts
    assert len(set(accounts.values())) == len(accounts)  # each its own
    assert all(len(password) >= 16 for password in accounts.values())

    uow = _unit_of_work(database)
    with uow:
        made = {user.email: user.email_verified for user in uow.session.scalars(select(User))}
    assert made == dict.fromkeys(accounts, True)  # every account printed, each confirmed
    for email, password in accounts.items():
        assert users.authenticate(uow, email=email, password=password).email == email
    with pytest.raises(Unauthenticated):
        users.authenticate(uow, email="iris@demo.creditpool.test", password="demo-password")
