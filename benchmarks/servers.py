"""The processes a benchmark measures: `creditpool serve`, and a hello-world app served alike.

Each runs as its own process group on a free port; `ResidentMemory` samples the resident memory
of every process of a group (the supervisor and its workers) for as long as the benchmark runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx
from tests.support.server import console_script, free_port

READY_WITHIN_SECONDS = 120.0


@dataclass(frozen=True)
class Served:
    """A running server: its address and its process."""

    url: str
    process: subprocess.Popen[bytes]


def _wait_until_ready(served: Served, probe_path: str, log: Path) -> None:
    deadline = time.monotonic() + READY_WITHIN_SECONDS
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if served.process.poll() is not None:
                raise SystemExit(f"the server exited:\n{log.read_text()[-3000:]}")
            try:
                if client.get(served.url + probe_path).status_code == 200:
                    return
            except httpx.TransportError:
                pass  # not listening yet
            time.sleep(0.2)
    raise SystemExit(f"the server was not ready in {READY_WITHIN_SECONDS} s:\n{log.read_text()}")


@contextmanager
def _running(command: list[str], env: dict[str, str], log: Path, probe: str) -> Iterator[Served]:
    port = free_port()
    with log.open("ab") as output:
        process = subprocess.Popen(
            [*command, "--port", str(port)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped with all its workers
        )
    served = Served(f"http://127.0.0.1:{port}", process)
    try:
        _wait_until_ready(served, probe, log)
        yield served
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def creditpool_server(
    database_url: str, workers: int, log: Path, **settings: str
) -> AbstractContextManager[Served]:
    """`creditpool serve --workers N` on the database, CREDITPOOL_* settings from `settings`."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("CREDITPOOL")}
    env |= {"CREDITPOOL_DATABASE_URL": database_url, **settings}
    command = [console_script(), "serve", "--workers", str(workers)]
    return _running(command, env, log, "/healthz")


def hello_server(workers: int, log: Path) -> AbstractContextManager[Served]:
    """The hello-world app (benchmarks/hello.py) under uvicorn with serve's settings."""
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "benchmarks.hello:app",
        "--workers",
        str(workers),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.getcwd(), env.get("PYTHONPATH")]))
    return _running(command, env, log, "/sync")


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def _group_members(group: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[2]) == group:  # the process group id
            pids.append(int(entry.name))
    return pids


class ResidentMemory(threading.Thread):
    """Samples, every half second, the largest resident memory of any one process in the
    process groups it is given, until stopped; `peak_mib` is the largest seen."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.groups: set[int] = set()
        self.peak_mib = 0.0
        # What was running when the peak was sampled (set by `during`).
        self.phase = ""
        self.peak_phase = ""
        self._stopping = threading.Event()

    def during(self, phase: str) -> None:
        """Name what runs from now on, to say which scenario the peak came in."""
        self.phase = phase

    def watch(self, served: Served) -> None:
        """Sample this server's processes too."""
        self.groups.add(served.process.pid)

    def run(self) -> None:
        while not self._stopping.wait(0.5):
            for group in list(self.groups):
                for pid in _group_members(group):
                    resident = _rss_kib(pid) / 1024
                    if resident > self.peak_mib:
                        self.peak_mib, self.peak_phase = resident, self.phase

    def stop(self) -> None:
        """Stop sampling."""
        self._stopping.set()
        self.join()
