"""Fixtures of the client's tests: a real `creditpool serve` per test module and engine, its
mail going to a real SMTP server of the test, and a class built over HTTP by the client itself.

On PostgreSQL the served database is the session's test database, kept between modules: every
person and org a test makes has an address of its own (`unique_email`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from creditpool.client import Client
from tests.support.databases import copy_database
from tests.support.server import running_server
from tests.support.smtp import SmtpServer, smtp_server

OPERATOR_KEY = "cpo-client-tests-key-0123456789-long-enough"
PASSWORD = "a password long enough for the client tests"


@dataclass(frozen=True)
class Served:
    """A running server and the SMTP server its mail goes to."""

    url: str
    smtp: SmtpServer


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    migrated_sqlite: Path,
) -> Iterator[Served]:
    """One `creditpool serve` for the test module, per engine; each test makes its own org.
    On SQLite it serves a copy of a migrated empty database: nothing to migrate as it starts."""
    directory: Path = tmp_path_factory.mktemp(f"client-{request.param}")
    url = (
        copy_database(migrated_sqlite, directory / "client.db")
        if request.param == "sqlite"
        else request.getfixturevalue("postgresql_url")
    )
    with smtp_server() as smtp:
        environment = {
            "CREDITPOOL_OPERATOR_KEY": OPERATOR_KEY,
            "CREDITPOOL_SMTP_URL": smtp.url,
            # The webhook receiver of the tests listens on 127.0.0.1.
            "CREDITPOOL_WEBHOOK_PRIVATE_NETWORKS": "on",
        }
        with running_server(directory, environment=environment, database_url=url) as server:
            yield Served(server.url, smtp)


@pytest.fixture
def anyio_backend() -> str:
    """The async tests run on asyncio."""
    return "asyncio"


def unique_email(label: str) -> str:
    """An address no other test (or earlier run on the same database) has used."""
    return f"{label}-{uuid.uuid4().hex[:12]}@client.test"


@dataclass(frozen=True)
class Person:
    """Someone signed up, with a personal token."""

    email: str
    token: str
    user_id: str


def a_person(url: str, label: str) -> Person:
    """Sign someone up and get their token, through the client."""
    email = unique_email(label)
    with Client(url) as anonymous:
        user = anonymous.sign_up(email=email, password=PASSWORD, name=label.title())
        token = anonymous.create_token(email=email, password=PASSWORD)
    return Person(email, token.token, user.id)


@dataclass(frozen=True)
class People:
    """People signed up once per module (a password check costs the server a second): each
    test opens an org of its own for them."""

    owner: Person
    students: list[Person]


@pytest.fixture(scope="module")
def people(served: Served) -> People:
    """An owner and three students, signed up on the module's server."""
    return People(
        a_person(served.url, "owner"), [a_person(served.url, "student") for _ in range(3)]
    )


@dataclass(frozen=True)
class Class:
    """An org with its owner, students who joined by the invite code, an API key, and
    credits in the pool."""

    url: str
    org: str
    owner: Person
    students: list[Person]
    student_ids: list[str]
    key: str


def a_class(
    url: str, people: People, *, students: int = 2, credits: Decimal = Decimal(100)
) -> Class:
    """Open an org for `people`'s owner, its first `students` students joined, over HTTP with
    the client."""
    with Client(url, token=OPERATOR_KEY) as operator:
        org = operator.create_org(name="Client class", owner_email=people.owner.email)
        operator.record_purchase(org=org.id, amount=credits)
    joined = people.students[:students]
    ids = []
    for person in joined:
        with Client(url, token=person.token) as student:
            assert org.invite_code is not None
            ids.append(student.join(code=org.invite_code).id)
    with Client(url, token=people.owner.token) as governing:
        key = governing.create_api_key(org=org.id, name="render farm").key
    return Class(url, org.id, people.owner, joined, ids, key)
