"""`creditpool demo --members N`: a school filled in bulk beside whatever is there, whose
owner can sign in with the password printed once, with the books still sound."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from creditpool.cli import app
from creditpool.services import users
from creditpool.storage.database import create_database_engine
from creditpool.storage.unit_of_work import UnitOfWork


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("CREDITPOOL_DATABASE_URL", url)
    return url


def invoke(*arguments: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(arguments))
    return result.exit_code, result.stdout


def test_a_school_is_added_beside_the_demo_and_its_owner_can_sign_in(database: str) -> None:
    assert invoke("demo")[0] == 0

    code, out = invoke("demo", "--members", "75")

    assert code == 0
    assert "with 75 members besides its owner" in out
    found = re.search(r"sign in as its owner: (\S+)  (\S+)  \(shown this once\)", out)
    assert found is not None, out
    email, password = found.groups()
    engine = create_database_engine(database)
    signed_in = users.authenticate(UnitOfWork.for_engine(engine), email=email, password=password)
    assert signed_in.email == email
    engine.dispose()
    code, listed = invoke("orgs", "list")
    assert listed.count("org_") == 4
    code, audited = invoke("audit")
    assert code == 0
    assert "the books are sound" in audited
    assert invoke("demo", "--members", "-1")[0] != 0
