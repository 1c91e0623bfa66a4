"""The pages in a real browser: Chromium (Debian's `chromium` package) driven by Playwright,
against `creditpool serve` running as a process of its own on a free port.

Every test gets a fresh server and database (a copy of a migrated empty one, made once per
process). Screenshots of the main pages go to test-artifacts/screenshots/ (ignored by git) for
a person to look at.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from creditpool.services import users
from creditpool.storage.database import create_database_engine
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.server import Server, running_server

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
PASSWORD = "correct horse battery"
OPERATOR_EMAIL = "operator@vendor.test"


def chromium_path() -> str:
    """The Chromium to drive: CREDITPOOL_TEST_CHROMIUM, else the `chromium` on PATH."""
    found = os.environ.get("CREDITPOOL_TEST_CHROMIUM") or shutil.which("chromium")
    if not found:
        pytest.fail(
            "no Chromium: install Debian's `chromium` package (scripts/test does, as root) "
            "or set CREDITPOOL_TEST_CHROMIUM"
        )
    return found


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    # Root (CI containers) cannot use Chromium's sandbox; /dev/shm is often small there.
    launched = playwright.chromium.launch(
        executable_path=chromium_path(),
        headless=True,
        args=["--no-sandbox", "--disable-dev-shm-usage"],
    )
    yield launched
    launched.close()


@contextmanager
def operator_site(
    directory: Path, template: Path, *, environment: dict[str, str] | None = None
) -> Iterator[Server]:
    """A fresh `creditpool serve` with one operator, OPERATOR_EMAIL, who can sign in, on a
    copy of `template` (the `migrated_sqlite` fixture): nothing to migrate as it starts.

    The operator is written into the served database through the services, from this process
    (the command line that does the same is tested in tests/interfaces): two more processes
    to start would cost every browser test seconds.
    """
    with running_server(directory, environment=environment, template=template) as server:
        engine = create_database_engine(server.env["CREDITPOOL_DATABASE_URL"])
        try:
            uow = UnitOfWork.for_engine(engine)
            users.create_user(uow, email=OPERATOR_EMAIL, name="Vera Vendor", password=PASSWORD)
            users.grant_operator(uow, OPERATOR_EMAIL)
        finally:
            engine.dispose()
        yield server


@pytest.fixture
def site(tmp_path: Path, migrated_sqlite: Path) -> Iterator[Server]:
    """A fresh `creditpool serve` with one operator, OPERATOR_EMAIL, who can sign in."""
    with operator_site(tmp_path, migrated_sqlite) as server:
        yield server


@dataclass
class People:
    """Opens a separate browser session (its own cookies) for each person in a story."""

    browser: Browser
    site: Server
    contexts: list[BrowserContext]

    def new(self, *, width: int = 1280, height: int = 900) -> Page:
        context = self.browser.new_context(
            base_url=self.site.url, viewport={"width": width, "height": height}
        )
        context.set_default_timeout(10_000)
        self.contexts.append(context)
        return context.new_page()


@pytest.fixture
def people(browser: Browser, site: Server) -> Iterator[People]:
    crowd = People(browser, site, [])
    yield crowd
    for context in crowd.contexts:
        context.close()


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot as test-artifacts/screenshots/NAME.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
