"""The headers that tell a browser how to treat us: a Content Security Policy that lets only
our own files script and style a page, and, when people reach us over https, HSTS and cookies
marked Secure (neither over http, where they would lock people out or lose the session).

The application runs in-process, its database work rolled back, once with an http public URL
and once with an https one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from creditpool.app import create_app
from creditpool.config import Config
from tests.api.support import OPERATOR_KEY
from tests.support.clock import FakeClock

STRICT_POLICY = {
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
}


@contextmanager
def served(engine: Engine, public_url: str) -> Iterator[TestClient]:
    """A client of the application whose public URL is `public_url`, reached at that URL."""
    config = Config(
        database_url=str(engine.url),
        public_url=public_url,
        operator_key=OPERATOR_KEY,
        secret_key="a session secret for the tests",
        rate_limits=False,
    )
    application = create_app(config, engine, clock=FakeClock())
    connection = engine.connect()
    outer = connection.begin()
    application.state.session_factory = sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    try:
        with TestClient(application, base_url=public_url) as client:
            yield client
    finally:
        outer.rollback()
        connection.close()


def directives(policy: str) -> set[str]:
    return {part.strip() for part in policy.split(";") if part.strip()}


def test_pages_let_only_their_own_files_script_and_style_them(engine: Engine) -> None:
    with served(engine, "http://creditpool.test") as client:
        for path in ("/sign-in", "/sign-up", "/static/style.css", "/api/v1/openapi.json"):
            response = client.get(path)
            assert response.status_code == 200, (path, response.text)
            policy = directives(response.headers["content-security-policy"])
            assert policy == STRICT_POLICY, path
            assert "unsafe-inline" not in response.headers["content-security-policy"]
        # A page that is not found, or refused, is still one of ours.
        missing = client.get("/orgs/org_nothing")
        assert directives(missing.headers["content-security-policy"]) == STRICT_POLICY
        # FastAPI's interactive docs keep their own inline script; they still cannot be framed.
        docs = client.get("/api/v1/docs")
        assert docs.status_code == 200
        assert "<script>" in docs.text
        assert directives(docs.headers["content-security-policy"]) == {"frame-ancestors 'none'"}


def test_over_https_browsers_are_told_to_stay_on_https_and_cookies_are_secure(
    engine: Engine,
) -> None:
    with served(engine, "https://creditpool.test") as client:
        page = client.get("/sign-in")
        assert page.status_code == 200, page.text
        assert page.headers["strict-transport-security"] == "max-age=31536000"
        [cookie] = page.headers.get_list("set-cookie")
        assert cookie.startswith("creditpool_session=")
        assert "secure" in [part.strip().lower() for part in cookie.split(";")]
        # The API's answers carry HSTS too: any answer over https teaches the browser.
        # (/healthz would open a connection of its own, which waits on this test's open
        # transaction on SQLite: the document is one of the API's answers too.)
        api = client.get("/api/v1/openapi.json")
        assert api.headers["strict-transport-security"] == "max-age=31536000"


def test_over_http_there_is_no_hsts_and_the_cookie_is_not_secure(engine: Engine) -> None:
    with served(engine, "http://creditpool.test") as client:
        page = client.get("/sign-in")
        assert page.status_code == 200, page.text
        assert "strict-transport-security" not in page.headers
        [cookie] = page.headers.get_list("set-cookie")
        assert cookie.startswith("creditpool_session=")
        assert "secure" not in [part.strip().lower() for part in cookie.split(";")]
        # Over http the client keeps and sends back the cookie: the session works.
        assert client.cookies.get("creditpool_session")
