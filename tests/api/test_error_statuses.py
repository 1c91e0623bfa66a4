"""One map from a domain error to an HTTP status, for the API and the pages alike: every class
of the error tree, raised behind an API route and behind a page, answers the same status in
problem+json and in an HTML error page."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from creditpool.app import create_app
from creditpool.config import Config
from creditpool.domain.errors import CreditpoolError, error_for_code
from creditpool.http_status import status_of
from creditpool.storage.database import create_database_engine


def error_classes() -> Iterator[type[CreditpoolError]]:
    """Every class of the error tree, the root included."""
    pending: list[type[CreditpoolError]] = [CreditpoolError]
    while pending:
        kind = pending.pop()
        yield kind
        pending.extend(kind.__subclasses__())


ERRORS = sorted(error_classes(), key=lambda kind: kind.code)


@pytest.fixture(scope="module")
def raising(sqlite_url: str) -> Iterator[TestClient]:
    """The application with a route under the API and a page that raise the error named (on
    SQLite only: no error here reaches the database)."""

    def raise_error(code: str) -> None:
        raise error_for_code(code, f"raised {code} on purpose")

    engine = create_database_engine(sqlite_url)
    config = Config(database_url=sqlite_url, secret_key="a session secret for the tests")
    app = create_app(config, engine)
    app.add_api_route("/api/v1/raise/{code}", raise_error)
    app.add_api_route("/raise/{code}", raise_error, include_in_schema=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client
    engine.dispose()


def test_every_code_names_one_class() -> None:
    codes = [kind.code for kind in ERRORS]
    assert len(codes) == len(set(codes))
    assert {"insufficient_credits", "payload_too_large", "unavailable"} <= set(codes)


@pytest.mark.parametrize("kind", ERRORS, ids=lambda kind: kind.code)
def test_the_api_and_the_pages_answer_an_error_with_the_same_status(
    raising: TestClient, kind: type[CreditpoolError]
) -> None:
    expected = status_of(kind("why"))
    problem = raising.get(f"/api/v1/raise/{kind.code}")
    page = raising.get(f"/raise/{kind.code}")
    assert (problem.status_code, page.status_code) == (expected, expected)
    assert problem.headers["content-type"] == "application/problem+json"
    assert problem.json()["code"] == kind.code
    assert page.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("validation_error", 422),
        ("payload_too_large", 413),
        ("unauthenticated", 401),
        ("forbidden", 403),
        ("invite_invalid", 404),
        ("insufficient_credits", 409),
        ("preview_outdated", 409),
        ("rate_limited", 429),
        ("unavailable", 503),
    ],
)
def test_the_statuses_are_the_published_ones(raising: TestClient, code: str, status: int) -> None:
    assert raising.get(f"/raise/{code}").status_code == status
    assert raising.get(f"/api/v1/raise/{code}").status_code == status
