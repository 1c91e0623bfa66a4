"""`creditpool serve` as a process of its own on a free port, for tests that need the real
server: the API over TCP, the pages in a browser."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.support.databases import copy_database

READY_WITHIN_SECONDS = 30.0
STOP_WITHIN_SECONDS = 10.0


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def console_script() -> str:
    """The installed `creditpool` command of this environment."""
    beside = Path(sys.executable).parent / "creditpool"
    found = str(beside) if beside.exists() else shutil.which("creditpool")
    assert found, "the creditpool console script is not installed"
    return found


@dataclass
class Server:
    """A running `creditpool serve` process and how to reach it."""

    process: subprocess.Popen[bytes]
    url: str
    database: Path
    output: Path
    env: dict[str, str] = field(default_factory=dict)

    def stdout(self) -> str:
        return self.output.read_text()

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=f"{self.url}/api/v1", timeout=10.0)

    def cli(self, *arguments: str) -> str:
        """Run `creditpool ARGUMENTS` on this server's database; return what it printed."""
        done = subprocess.run(
            [console_script(), *arguments],
            env=self.env,
            cwd=self.database.parent,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"creditpool {arguments}: {done.stdout}{done.stderr}"
        return done.stdout


def _wait_until_healthy(server: Server, errors: Path) -> None:
    deadline = time.monotonic() + READY_WITHIN_SECONDS
    with httpx.Client(timeout=2.0) as probe:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                pytest.fail(
                    f"serve exited with {server.process.returncode}:\n"
                    f"{server.stdout()}\n{errors.read_text()}"
                )
            try:
                if probe.get(f"{server.url}/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass  # not listening yet
            time.sleep(0.1)  # a real process starting: there is no clock to move
    pytest.fail(f"serve was not healthy within {READY_WITHIN_SECONDS} s:\n{errors.read_text()}")


@contextmanager
def running_server(
    directory: Path,
    *options: str,
    environment: dict[str, str] | None = None,
    public_url: bool = True,
    database_url: str | None = None,
    port: int | None = None,
    template: Path | None = None,
) -> Iterator[Server]:
    """Run `creditpool serve OPTIONS` on a free port and a fresh SQLite file in `directory`;
    CREDITPOOL_PUBLIC_URL names that port unless `public_url` is False (serve's default).

    `database_url` serves another database instead (PostgreSQL, say); `port` listens there
    instead of on a free port (a server started again where its clients look for it);
    `template`, a migrated SQLite file, is copied to be the fresh file, so that serve finds
    nothing to migrate (the tests of migrating leave it out).
    """
    database = directory / "served.db"
    if template is not None and database_url is None:
        copy_database(template, database)
    port = port or free_port()
    env = {name: value for name, value in os.environ.items() if "CREDITPOOL" not in name}
    env |= {
        "CREDITPOOL_DATABASE_URL": database_url or f"sqlite:///{database}",
        "PYTHONUNBUFFERED": "1",  # the demo's lines reach the file before uvicorn starts
        # Tests make many anonymous requests from one address: limits only where a test asks.
        "CREDITPOOL_RATE_LIMITS": "off",
        **(environment or {}),
    }
    if public_url:
        env["CREDITPOOL_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    output, errors = directory / "stdout.txt", directory / "stderr.txt"
    with output.open("wb") as out, errors.open("wb") as err:
        process = subprocess.Popen(
            [console_script(), "serve", "--port", str(port), *options],
            cwd=directory,
            env=env,
            stdout=out,
            stderr=err,
        )
    server = Server(process, f"http://127.0.0.1:{port}", database, output, env)
    try:
        _wait_until_healthy(server, errors)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=STOP_WITHIN_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
