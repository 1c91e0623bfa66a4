"""A throwaway PostgreSQL cluster made from the machine's binaries, for the test session.

Used when CREDITPOOL_TEST_POSTGRES_URL is not set. The cluster lives in a temporary folder,
listens on a free loopback port, runs without fsync (it is thrown away) and is removed at the
end. PostgreSQL refuses to run as root, so as root the cluster runs as the `postgres` user.

By default commits are not even waited for (synchronous_commit=off): fast, and enough while
nothing crashes. A durability test asks for `synchronous_commit=True`, so that a commit that
was acknowledged survives the server being killed (fsync stays off: only processes die there,
not the machine), and crashes and restarts the cluster through the `Cluster` it gets. The
benchmark asks for `durable=True`: fsync and synchronous commits, as production runs, so that
its figures and pgbench's are those of commits that reach the disk.
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
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Cluster:
    """A running throwaway cluster: its URL, and how to crash and start it again."""

    url: str
    data: Path
    options: str
    log: Path
    as_user: str | None

    def _pg_ctl(self, *arguments: str) -> None:
        _run([_binary("pg_ctl"), "-D", str(self.data), *arguments], as_user=self.as_user)

    @property
    def running(self) -> bool:
        """Whether the server runs (a crashed or stopped one leaves no pid file)."""
        return (self.data / "postmaster.pid").exists()

    def crash(self) -> None:
        """Stop the server at once, as a crash would: every backend dies, nothing is flushed."""
        self._pg_ctl("-m", "immediate", "-w", "stop")

    def start(self) -> None:
        """Start the server again (it recovers from its log first) and wait until it serves."""
        self._pg_ctl("-o", self.options, "-l", str(self.log), "-w", "start")


@contextmanager
def throwaway_cluster(
    *, synchronous_commit: bool = False, durable: bool = False, max_connections: int = 100
) -> Iterator[str]:
    """Start a cluster, create the test database, yield its URL, then remove it all."""
    with cluster(
        synchronous_commit=synchronous_commit, durable=durable, max_connections=max_connections
    ) as running:
        yield running.url


@contextmanager
def cluster(
    *, synchronous_commit: bool = False, durable: bool = False, max_connections: int = 100
) -> Iterator[Cluster]:
    """Start a cluster, create the test database, yield the cluster, then remove it all.

    With `synchronous_commit`, a commit is acknowledged only once its log record is written,
    so acknowledged commits survive `Cluster.crash`; `durable` also flushes them to disk.
    """
    initdb = _binary("initdb")
    _binary("pg_ctl")  # missing binaries are found out before anything is made
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
        waits = synchronous_commit or durable
        options = (
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1 "
            f"-c fsync={'on' if durable else 'off'} "
            f"-c synchronous_commit={'on' if waits else 'off'} "
            f"-c full_page_writes={'on' if durable else 'off'} "
            f"-c max_connections={max_connections}"
        )
        running = Cluster(
            url=f"postgresql+psycopg://creditpool@127.0.0.1:{port}/{DATABASE}",
            data=data,
            options=options,
            log=root / "log",
            as_user=as_user,
        )
        running.start()
        try:
            with psycopg.connect(
                f"host=127.0.0.1 port={port} user=creditpool dbname=postgres", autocommit=True
            ) as connection:
                connection.execute(f"CREATE DATABASE {DATABASE}")
            yield running
        finally:
            if running.running:
                running.crash()
    finally:
        shutil.rmtree(root, ignore_errors=True)
