"""Fixtures for the HTTP API: the real application, in-process, on both engines.

Each test's requests run inside one outer transaction that is rolled back at the end, like
the service tests. `world` builds the usual cast over HTTP: an operator, an org with its
owner, a manager, students and an org API key.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from creditpool.app import create_app
from creditpool.config import Config
from tests.api.support import OPERATOR_KEY, PUBLIC_URL, Api, World
from tests.support.clock import FakeClock


@pytest.fixture
def config(engine: Engine) -> Config:
    """The application's configuration; a test module overrides this fixture to change it."""
    return Config(
        database_url=str(engine.url),
        public_url=PUBLIC_URL,
        operator_key=OPERATOR_KEY,
        secret_key="a session secret for the tests",  # nothing to read from the database
        # Every test calls from one address many times: the rate-limit tests turn them on.
        rate_limits=False,
    )


@pytest.fixture
def app(engine: Engine, clock: FakeClock, config: Config) -> Iterator[FastAPI]:
    """The application, its database work rolled back after the test."""
    application = create_app(config, engine, clock=clock)
    connection = engine.connect()
    outer = connection.begin()
    application.state.session_factory = sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    yield application
    outer.rollback()
    connection.close()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """An HTTP client of the application; server errors come back as 500, not exceptions."""
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def api(client: TestClient) -> Api:
    """The client with helpers for tokens and problem checks."""
    return Api(client)


@pytest.fixture
def world(api: Api) -> World:
    """An org with an owner, a manager, two students, an org API key and 100 credits."""
    return World.build(api)
