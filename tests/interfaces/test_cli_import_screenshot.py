"""A CSV import as a person sees it: `creditpool members import` typed into a real terminal
(tmux), run twice, the screen captured with its colours, drawn by Rich as SVG and
photographed by Chromium into test-artifacts/csv-import.png (ignored by git)."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import time
import uuid
from functools import partial
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright
from rich.console import Console
from rich.text import Text

from creditpool.services import orgs, users
from creditpool.storage.database import create_database_engine
from creditpool.storage.migrate import upgrade
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.server import console_script

ARTIFACT = Path(__file__).resolve().parents[2] / "test-artifacts" / "csv-import.png"
WIDTH, HEIGHT = 118, 34
SUMMARY = re.compile(r"^\d+ rows: .* bad.*$", re.MULTILINE)


def _tmux(socket: str, *arguments: str) -> str:
    done = subprocess.run(
        ["tmux", "-L", socket, *arguments], capture_output=True, text=True, check=True, timeout=30
    )
    return done.stdout


def _chromium() -> str:
    found = os.environ.get("CREDITPOOL_TEST_CHROMIUM") or shutil.which("chromium")
    if not found:
        pytest.fail("no Chromium: install Debian's `chromium` or set CREDITPOOL_TEST_CHROMIUM")
    return found


def _class(tmp_path: Path) -> tuple[str, str, Path]:
    """A database with an org, whose owner and two of the file's people have accounts."""
    url = f"sqlite:///{tmp_path / 'school.db'}"
    upgrade(url)
    engine = create_database_engine(url)
    uow = UnitOfWork.for_engine(engine)
    owner = users.create_user(uow, email="iris@school.test", name="Iris Shaw")
    for email, name in (("ada@school.test", "Ada"), ("finn@school.test", "Finn")):
        users.create_user(uow, email=email, name=name)
    org = orgs.create_org(uow, name="Piano class 3B", owner_user_id=owner.id, actor="test")
    engine.dispose()
    roster = tmp_path / "class-3b.csv"
    roster.write_text(
        "email,name,role,seat,groups\n"
        "ada@school.test,Ada Lovelace,member,licensed,Piano;Theory\n"
        "bob@school.test,Bob Stone,member,licensed,Piano\n"
        "cleo@school.test,Cleo Park,manager,external,\n"
        "dan@school,Dan Reed,member,licensed,Piano\n"
        "eve@school.test,Eve Moss,member,unlicensed,Theory\n"
        "finn@school.test,Finn Artist,member,licensed,Theory\n"
        "gus@school.test,Gus Hale,teacher,licensed,\n",
        encoding="utf-8",
    )
    return url, org.id, roster


def test_a_csv_import_as_a_person_sees_it(tmp_path: Path) -> None:
    if shutil.which("tmux") is None:
        pytest.fail("no tmux: install Debian's `tmux` to run the command line in a terminal")
    url, org_id, roster = _class(tmp_path)
    socket = f"creditpool-{uuid.uuid4().hex[:8]}"
    command = f"creditpool members import {org_id} {roster.name}"
    environment = {
        "CREDITPOOL_DATABASE_URL": url,
        "CREDITPOOL_PUBLIC_URL": "https://credits.school.test",
        "PATH": f"{Path(console_script()).parent}:/usr/bin:/bin",
        "TERM": "xterm-256color",
        "COLORTERM": "truecolor",
    }
    options = [
        option for name, value in environment.items() for option in ("-e", f"{name}={value}")
    ]
    _tmux(socket, "new-session", "-d", "-x", str(WIDTH), "-y", str(HEIGHT), "-c", str(tmp_path),
          *options, "bash --norc --noprofile")  # fmt: skip
    try:
        _wait_for(socket, lambda shown: shown.rstrip().endswith(("#", "$")))
        _tmux(socket, "send-keys", "-t", "0", "PS1='$ '; clear", "Enter")
        _wait_for(socket, lambda shown: shown.strip() == "$")
        for runs in (1, 2):  # the second run creates nothing and says what it skipped
            _tmux(socket, "send-keys", "-t", "0", command, "Enter")
            screen = _wait_for(socket, partial(_finished, runs=runs))
        _tmux(socket, "send-keys", "-t", "0", "echo exit code $?", "Enter")
        screen = _wait_for(socket, lambda shown: "exit code 1\n$" in shown)
        coloured = _tmux(socket, "capture-pane", "-p", "-e", "-t", "0")  # as wrapped on screen
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], check=False, timeout=30)

    # What the person reads: each bad row by its line, the bar finished, what each run did.
    summaries = SUMMARY.findall(screen)
    assert summaries == [
        "7 rows: 2 enrolled, 3 invited, 0 skipped, 2 bad (lines 5, 8)",
        "7 rows: 0 enrolled, 0 invited, 5 skipped, 2 bad (lines 5, 8)",
    ], screen
    assert "line 5  error (validation_error): 'dan@school' is not an e-mail address" in screen
    assert "line 8  error (validation_error): 'teacher' is not a role" in screen
    assert screen.count("7/7 rows") == 2
    assert "line 2  Ada Lovelace <ada@school.test>  skipped: already a member" in screen
    assert "\x1b[" in coloured  # the terminal showed colours, and the picture keeps them

    drawn = Console(record=True, width=WIDTH, file=io.StringIO(), force_terminal=True)
    drawn.print(Text.from_ansi(coloured.rstrip("\n")), soft_wrap=True)
    svg = drawn.export_svg(title=f"creditpool members import: {roster.name}")
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=_chromium(), headless=True, args=["--no-sandbox"]
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_content(f"<body style='margin:0;background:#fff'>{svg}</body>")
        page.locator("svg").first.screenshot(path=str(ARTIFACT))
        browser.close()
    picture = ARTIFACT.read_bytes()
    assert picture[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(picture[16:20], "big"), int.from_bytes(picture[20:24], "big")
    assert width > 800
    assert height > 400


def _finished(shown: str, *, runs: int) -> bool:
    """Whether the terminal shows `runs` imports done and the prompt back."""
    return len(SUMMARY.findall(shown)) == runs and shown.rstrip().endswith("$")


def _wait_for(socket: str, done: object, *, seconds: float = 60) -> str:
    """The pane's text once `done(text)` holds (the command may take a while to start)."""
    assert callable(done)
    deadline = time.monotonic() + seconds
    while True:
        shown = _tmux(socket, "capture-pane", "-p", "-J", "-t", "0")
        if done(shown):
            return shown
        if time.monotonic() > deadline:
            pytest.fail(f"the terminal did not show what was expected:\n{shown}")
        time.sleep(0.2)
