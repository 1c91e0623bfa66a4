"""Rate limits hold across server processes: two `creditpool serve` processes share one
database (a SQLite file, or PostgreSQL) and count together, so a client cannot double its
allowance by spreading its attempts over them.

These servers run on the wall clock: a test that starts too close to the end of a window waits
for the next one, so its attempts all fall in one window.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.api.support import PASSWORD
from tests.support.server import Server, running_server

FAILED_PASSWORD_LIMIT = 3
ANONYMOUS_LIMIT = 6
LIMITS = {
    "CREDITPOOL_RATE_LIMITS": "on",
    "CREDITPOOL_FAILED_PASSWORD_LIMIT": str(FAILED_PASSWORD_LIMIT),
    "CREDITPOOL_ANONYMOUS_LIMIT": str(ANONYMOUS_LIMIT),
}


def two_servers(tmp_path: Path, database_url: str) -> Iterator[tuple[Server, Server]]:
    with ExitStack() as stack:
        servers = []
        for name in ("first", "second"):
            directory = tmp_path / name
            directory.mkdir()
            servers.append(
                stack.enter_context(
                    running_server(
                        directory, environment={**LIMITS, "CREDITPOOL_DATABASE_URL": database_url}
                    )
                )
            )
        yield servers[0], servers[1]


def start_of_a_fresh_window(seconds: int, *, needed: float = 10.0) -> None:
    """Wait, if need be, so that `needed` seconds remain in the current window."""
    left = seconds - datetime.now(UTC).timestamp() % seconds
    if left < needed:
        time.sleep(left + 0.1)  # real processes on the wall clock: no clock to move


@pytest.fixture
def sqlite_pair(tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    yield from two_servers(tmp_path, f"sqlite:///{tmp_path / 'shared.db'}")


@pytest.fixture(params=["sqlite", "postgresql"])
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'shared.db'}"
    else:
        url = request.getfixturevalue("postgresql_url")
    yield from two_servers(tmp_path, url)


def test_failed_passwords_are_counted_together_by_both_servers(
    pair: tuple[Server, Server],
) -> None:
    first, second = pair
    email = f"ada-{uuid.uuid4().hex[:12]}@servers.test"  # the PostgreSQL database is shared
    with first.client() as one, second.client() as two:
        created = one.post("/users", json={"email": email, "password": PASSWORD, "name": "Ada"})
        assert created.status_code == 201, created.text
        start_of_a_fresh_window(15 * 60)
        wrong = {"email": email, "password": "a wrong guess"}
        answers = [
            (one if attempt % 2 == 0 else two).post("/tokens", json=wrong).status_code
            for attempt in range(FAILED_PASSWORD_LIMIT)
        ]
        assert answers == [401] * FAILED_PASSWORD_LIMIT
        # Locked on both servers, whichever took the failures: even the right password.
        for client in (one, two):
            locked = client.post("/tokens", json={"email": email, "password": PASSWORD})
            assert locked.status_code == 429, locked.text
            assert locked.json()["code"] == "rate_limited"
            assert 0 < int(locked.headers["Retry-After"]) <= 15 * 60


def test_anonymous_calls_are_counted_together_by_both_servers(
    sqlite_pair: tuple[Server, Server],
) -> None:
    first, second = sqlite_pair
    with first.client() as one, second.client() as two:
        start_of_a_fresh_window(60)
        statuses = [
            (one if attempt % 2 == 0 else two)
            .post("/password-resets", json={"email": "someone@servers.test"})
            .status_code
            for attempt in range(ANONYMOUS_LIMIT + 2)
        ]
        assert statuses == [202] * ANONYMOUS_LIMIT + [429, 429]
        refused = two.post("/tokens", json={"email": "someone@servers.test", "password": "x"})
        assert refused.status_code == 429
        assert 0 < int(refused.headers["Retry-After"]) <= 60
        # The pages count the same address: the sign-in form is refused too, with a page.
        with first.client() as pages:
            page = pages.post(f"{first.url}/sign-in", data={"email": "x", "password": "y"})
        assert page.status_code == 429
        assert "Too many attempts" in page.text
        assert int(page.headers["Retry-After"]) > 0


def test_clients_behind_a_trusted_proxy_are_counted_apart(
    sqlite_pair: tuple[Server, Server],
) -> None:
    # The tests reach the servers from 127.0.0.1, the proxy `serve` trusts by default: the
    # client address it names in X-Forwarded-For is the one counted.
    first, _ = sqlite_pair
    with first.client() as proxy:

        def reset_from(client: str) -> int:
            answer = proxy.post(
                "/password-resets",
                json={"email": "someone@servers.test"},
                headers={"X-Forwarded-For": client},
            )
            return answer.status_code

        start_of_a_fresh_window(60)
        statuses = [reset_from("198.51.100.1") for _ in range(ANONYMOUS_LIMIT + 1)]
        assert statuses == [202] * ANONYMOUS_LIMIT + [429]
        assert reset_from("198.51.100.2") == 202  # another client behind the same proxy
