"""A PostgreSQL cluster of the durability tests' own, and an org to load.

The shared test cluster does not wait for its commits (synchronous_commit=off), so a crash
there loses commits it acknowledged: right for speed, wrong for proving durability. These tests
start their own with synchronous_commit=on, crash and restart it. They need the machine's
PostgreSQL binaries even when CREDITPOOL_TEST_POSTGRES_URL names a server: they must be able to
kill it. Without them they fail under CI=true and skip elsewhere, like every PostgreSQL test.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest
from sqlalchemy import Engine

from creditpool.domain.amounts import credits
from creditpool.services import credits as pool
from creditpool.services import members, orgs, users
from creditpool.services.targets import Target
from creditpool.storage.database import create_database_engine
from creditpool.storage.migrate import upgrade
from creditpool.storage.unit_of_work import UnitOfWork
from tests.api.support import PASSWORD, bearer
from tests.durability.load import Org
from tests.support.postgres import Cluster, PostgresUnavailable, cluster
from tests.support.server import Server

STUDENTS = 8
PURCHASED, EACH_STUDENT = "1000000", "100"


@pytest.fixture(scope="session")
def durable_cluster() -> Iterator[Cluster]:
    """A migrated cluster whose acknowledged commits survive its crash."""
    with ExitStack() as stack:
        try:
            running = stack.enter_context(cluster(synchronous_commit=True))
        except PostgresUnavailable as error:
            if os.environ.get("CI") == "true":
                pytest.fail(f"PostgreSQL is required in CI: {error}")
            pytest.skip(f"PostgreSQL unavailable: {error}")
        upgrade(running.url)
        yield running


@pytest.fixture
def database(durable_cluster: Cluster) -> Iterator[Cluster]:
    """The durable cluster, running at the start and at the end of each test."""
    if not durable_cluster.running:
        durable_cluster.start()  # a test that crashed it failed before starting it again
    yield durable_cluster
    if not durable_cluster.running:
        durable_cluster.start()


@pytest.fixture
def durable_engine(database: Cluster) -> Iterator[Engine]:
    """An engine on the durable cluster, for setting up and for reading the books."""
    engine = create_database_engine(database.url)
    yield engine
    engine.dispose()


@pytest.fixture
def make_org(durable_engine: Engine) -> Callable[[Server, str], Org]:
    """Make an org with STUDENTS students holding credits, its owner's token and a usage key."""

    def make(server: Server, label: str) -> Org:
        uow = UnitOfWork.for_engine(durable_engine)
        email = f"owner-{label}@durability.test"
        owner = users.create_user(uow, email=email, name="Owner", password=PASSWORD)
        org = orgs.create_org(uow, name=f"Durable {label}", owner_user_id=owner.id, actor="test")
        pool.record_purchase(uow, org.id, credits(PURCHASED), actor="test")
        students = [
            members.add_member(
                uow,
                org.id,
                user_id=users.create_user(
                    uow, email=f"student{number}-{label}@durability.test", name="Student"
                ).id,
                actor="test",
            ).id
            for number in range(STUDENTS)
        ]
        pool.allocate_credits(
            uow, org.id, Target.all_students(), credits(EACH_STUDENT), actor="test"
        )
        with server.client() as http:
            issued = http.post("/tokens", json={"email": email, "password": PASSWORD})
            assert issued.status_code == 201, issued.text
            token = issued.json()["token"]
            key = http.post(
                f"/orgs/{org.id}/api-keys",
                headers=bearer(token),
                json={"name": "render farm", "scopes": ["usage"]},
            )
            assert key.status_code == 201, key.text
        return Org(org.id, token, key.json()["key"], students)

    return make
