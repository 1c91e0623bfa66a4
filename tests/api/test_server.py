"""The real server: `creditpool serve` as a process of its own, spoken to over TCP.

Each server gets a fresh SQLite file, so these tests do not run per engine. The API's paths are
listed here from the API's contract, not from the code, so the published OpenAPI document
is checked against what clients were promised.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from creditpool.app import create_app
from creditpool.cli import app as cli
from creditpool.config import Config
from creditpool.storage.database import create_database_engine
from creditpool.storage.schema import Base
from tests.api.support import PASSWORD, bearer
from tests.support.server import Server, running_server

SERVER_OPERATOR_KEY = "cpo-server-test-key-9876543210-long-enough"  # 32 or more

# Every call of the API, as (method, path) under /api/v1.
API_MD_CALLS = [
    ("POST", "/users"),
    ("POST", "/tokens"),
    ("DELETE", "/tokens/{id}"),
    ("GET", "/me"),
    ("POST", "/orgs"),
    ("GET", "/orgs"),
    ("GET", "/orgs/{org}"),
    ("PATCH", "/orgs/{org}/settings"),
    ("POST", "/orgs/{org}/purchases"),
    ("POST", "/orgs/{org}/pause"),
    ("POST", "/orgs/{org}/resume"),
    ("GET", "/orgs/{org}/balance"),
    ("GET", "/orgs/{org}/transfers"),
    ("POST", "/orgs/{org}/api-keys"),
    ("GET", "/orgs/{org}/api-keys"),
    ("DELETE", "/orgs/{org}/api-keys/{id}"),
    ("GET", "/orgs/{org}/invite-link"),
    ("POST", "/orgs/{org}/invite-link/rotate"),
    ("POST", "/orgs/{org}/invitations"),
    ("GET", "/orgs/{org}/invitations"),
    ("DELETE", "/orgs/{org}/invitations/{id}"),
    ("POST", "/join/{code}"),
    ("POST", "/invitations/{token}/accept"),
    ("GET", "/orgs/{org}/members"),
    ("GET", "/orgs/{org}/members/{member}"),
    ("PATCH", "/orgs/{org}/members/{member}"),
    ("DELETE", "/orgs/{org}/members/{member}"),
    ("POST", "/orgs/{org}/groups"),
    ("GET", "/orgs/{org}/groups"),
    ("PUT", "/orgs/{org}/groups/{group}/members"),
    ("DELETE", "/orgs/{org}/groups/{group}"),
    ("POST", "/orgs/{org}/reset"),
    ("GET", "/orgs/{org}/reset"),
    ("POST", "/orgs/{org}/allocations"),
    ("POST", "/orgs/{org}/revocations"),
    ("POST", "/orgs/{org}/members/{member}/usage"),
    ("POST", "/orgs/{org}/members/{member}/holds"),
    ("POST", "/orgs/{org}/holds/{hold}/capture"),
    ("POST", "/orgs/{org}/holds/{hold}/void"),
    ("POST", "/orgs/{org}/usage"),
    ("GET", "/orgs/{org}/members/{member}/access"),
]


def _shape(path: str) -> str:
    """The path with its parameters unnamed: the contract fixes where they are, not their names."""
    return re.sub(r"\{[^}]+\}", "{}", path)


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start `creditpool serve` on a free port and an empty SQLite file; stop it at the end."""
    with ExitStack() as stack:

        def start(*options: str, public_url: bool = True) -> Server:
            environment = {"CREDITPOOL_OPERATOR_KEY": SERVER_OPERATOR_KEY}
            return stack.enter_context(
                running_server(tmp_path, *options, environment=environment, public_url=public_url)
            )

        yield start


def test_serve_migrates_publishes_the_contract_and_adds_no_data(
    start_server: Callable[..., Server],
) -> None:
    server = start_server(public_url=False)

    with sqlite3.connect(server.database) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables

    with server.client() as http:
        document = http.get("/openapi.json")  # no Authorization header
        assert document.status_code == 200, document.text
        published = {
            (method.upper(), _shape(path.removeprefix("/api/v1")))
            for path, operations in document.json()["paths"].items()
            for method in operations
        }
        missing = [call for call in API_MD_CALLS if (call[0], _shape(call[1])) not in published]
        assert missing == []

        operator = bearer(SERVER_OPERATOR_KEY)
        orgs = http.get("/orgs", headers=operator)
        assert orgs.status_code == 200, orgs.text
        assert orgs.json()["items"] == []  # plain serve adds no data
        assert http.get("/orgs").status_code == 401
        assert http.get("/orgs", headers=bearer("not-the-operator-key")).status_code == 401

        owner = http.post(
            "/users", json={"email": "owner@served.test", "password": PASSWORD, "name": "Owner"}
        )
        assert owner.status_code == 201, owner.text
        created = http.post(
            "/orgs",
            headers=operator,
            json={"name": "Served class", "owner_email": "owner@served.test"},
        )
        assert created.status_code == 201, created.text
        # Without CREDITPOOL_PUBLIC_URL, invite links lead to where serve listens.
        link = http.get(f"/orgs/{created.json()['id']}/invite-link", headers=operator)
        assert link.json()["url"].startswith(f"{server.url}/join/"), link.text
        listed = http.get("/orgs", headers=operator).json()["items"]
        assert [(org["id"], org["name"]) for org in listed] == [
            (created.json()["id"], "Served class")
        ]


def test_serve_demo_fills_an_empty_database_and_says_how_to_sign_in(
    start_server: Callable[..., Server],
) -> None:
    server = start_server("--demo")
    printed = server.stdout()
    # One "e-mail  password" line per account, each password its own.
    passwords = dict(re.findall(r"^([\w.+-]+@[\w-]+(?:\.[\w-]+)+)  (\S+)$", printed, re.M))
    emails = set(re.findall(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", printed))
    assert set(passwords) == emails, printed
    assert len(set(passwords.values())) == len(passwords)
    operators = re.findall(r"([\w.+-]+@[\w-]+(?:\.[\w-]+)+) is the operator", printed)
    assert len(operators) == 1, printed
    printed_org_ids = set(re.findall(r"\b(org_[0-9a-z]+)\b", printed))

    with server.client() as http:
        orgs = http.get("/orgs", headers=bearer(SERVER_OPERATOR_KEY))
        assert orgs.status_code == 200, orgs.text
        served = orgs.json()["items"]
        assert len(served) == 3
        assert {org["id"] for org in served} == printed_org_ids

        # Every person the walkthrough names signs in with the printed password.
        assert len(emails) >= 2
        tokens = {}
        for email in sorted(emails):
            issued = http.post("/tokens", json={"email": email, "password": passwords[email]})
            assert issued.status_code == 201, (email, issued.text)
            tokens[email] = issued.json()["token"]
        # The demo operator is an operator user: it sees every org.
        as_operator = http.get("/orgs", headers=bearer(tokens[operators[0]])).json()["items"]
        assert {org["id"] for org in as_operator} == printed_org_ids


def test_keys_create_operator_prints_a_key_that_the_api_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    monkeypatch.setenv("CREDITPOOL_DATABASE_URL", url)
    monkeypatch.delenv("CREDITPOOL_OPERATOR_KEY", raising=False)
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
    result = runner.invoke(cli, ["keys", "create", "--operator", "--name", "billing"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    key = lines[0].split(": ", 1)[1]
    assert "shown this once" in result.stderr

    engine = create_database_engine(url)
    try:
        application = create_app(Config(database_url=url), engine)  # no configured operator key
        with TestClient(application) as http:
            assert http.get("/api/v1/orgs", headers=bearer(key)).json()["items"] == []
            http.post(
                "/api/v1/users",
                json={"email": "owner@keys.test", "password": PASSWORD, "name": "Owner"},
            )
            created = http.post(
                "/api/v1/orgs",
                headers=bearer(key),
                json={"name": "Keyed class", "owner_email": "owner@keys.test"},
            )
            assert created.status_code == 201, created.text
            purchase = http.post(
                f"/api/v1/orgs/{created.json()['id']}/purchases",
                headers=bearer(key),
                json={"amount": "10"},
            )
            assert purchase.status_code == 201, purchase.text
            # A key of the same shape with another secret is refused.
            forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
            assert http.get("/api/v1/orgs", headers=bearer(forged)).status_code == 401
    finally:
        engine.dispose()
