"""A throwaway PostgreSQL cluster made from the machine's binaries, for the test session.

Used when CREDITPOOL_TEST_POSTGRES_URL is not set. The cluster lives in a temporary folder,
listens on a free loopback port, runs without fsync (it is thrown away) and is removed at the
end. PostgreSQL refuses to run as root, so as root the cluster runs as the `postgres` user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

DATABASE = "creditpool_test"
SEARCH_PATHS = ["/usr/lib/postgresql/*/bin", "/usr/local/bin", "/usr/bin"]


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server could be started here."""


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for pattern in SEARCH_PATHS:
        for candidate in sorted(Path("/").glob(pattern.lstrip("/")), reverse=True):
            if (candidate / name).exists():
                return str(candidate / name)
    raise PostgresUnavailable(f"no {name} binary on this machine")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run(command: list[str], *, as_user: str | None) -> None:
    if as_user is not None:
        command = ["runuser", "-u", as_user, "--", *command]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PostgresUnavailable(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")


@contextmanager
def throwaway_cluster() -> Iterator[str]:
    """Start a cluster, create the test database, yield its URL, then remove it all."""
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    as_user = None
    root = Path(tempfile.mkdtemp(prefix="creditpool-pg-"))
    if os.geteuid() == 0:
        as_user = "postgres"
        account = pwd.getpwnam(as_user)
        os.chown(root, account.pw_uid, account.pw_gid)
    data, port = root / "data", _free_port()
    try:
        _run(
            [
                initdb,
                "-D",
                str(data),
                "-U",
                "creditpool",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
            as_user=as_user,
        )
        options = (
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
        )
        _run(
            [pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"],
            as_user=as_user,
        )
        try:
            with psycopg.connect(
                f"host=127.0.0.1 port={port} user=creditpool dbname=postgres", autocommit=True
            ) as connection:
                connection.execute(f"CREATE DATABASE {DATABASE}")
            yield f"postgresql+psycopg://creditpool@127.0.0.1:{port}/{DATABASE}"
        finally:
            _run([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"], as_user=as_user)
    finally:
        shutil.rmtree(root, ignore_errors=True)
