"""Load from separate processes: wrk with a Lua script made for each scenario, and pgbench.

wrk keeps 16 connections busy from 2 threads and reports every request's latency; the script
below picks a random member per request, gives each allocation its own idempotency key and
prints, when wrk is done, one JSON line with the count, the duration, the 50th and 99th
percentile latencies and the requests that failed (non-2xx answers, socket errors).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx

CONNECTIONS, THREADS = 16, 2

_LUA = r"""
local ids, counter, method, path_of, body_of = {}, 0, "__METHOD__", nil, nil
local headers = {}
__HEADERS__
local threads = {}
function setup(thread)
  thread:set("number", #threads + 1)
  table.insert(threads, thread)
end
function init(args)
  math.randomseed(number * 7919 + os.time())
  local file = io.open("__IDS__", "r")
  if file then
    for line in file:lines() do table.insert(ids, line) end
    file:close()
  end
end
local function member() return ids[math.random(#ids)] end
__BUILD__
function request()
  counter = counter + 1
  local path, body = build(counter)
  return wrk.format(method, path, headers, body)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "seconds": %f, "p50_ms": %f, "p99_ms": %f, "max_ms": %f, ' ..
    '"failed": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3,
    latency:percentile(99) / 1e3, latency.max / 1e3, e.status,
    e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass(frozen=True)
class Load:
    """What one wrk run measured."""

    rate: float  # requests a second
    p50_ms: float
    p99_ms: float
    failed: int  # answers that were not 2xx, and socket errors

    @property
    def clean(self) -> bool:
        """Whether every request succeeded."""
        return self.failed == 0


def _drain(base_url: str, *, within: float = 60.0) -> None:
    """Wait until the server has finished the requests wrk left in flight (slow ones go on
    after wrk stops), so the next scenario does not measure this one's tail."""
    deadline = time.monotonic() + within
    with httpx.Client(timeout=within) as client:
        while time.monotonic() < deadline:
            started = time.monotonic()
            client.get(f"{base_url}/healthz")
            if time.monotonic() - started < 0.05:
                return
            time.sleep(0.2)


def wrk_binary() -> str:
    """The wrk program (scripts/bench installs Debian's package when it is missing)."""
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("the benchmark needs wrk: apt-get install wrk")
    return found


def run_wrk(
    base_url: str,
    folder: Path,
    name: str,
    build: str,
    *,
    seconds: float,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    ids: list[str] | None = None,
    connections: int = CONNECTIONS,
) -> Load:
    """Drive `base_url` for `seconds` with requests made by the Lua function `build`, which
    takes the request's number and returns its path and body (`member()` picks from `ids`)."""
    ids_file = folder / f"{name}.ids"
    ids_file.write_text("\n".join(ids or []) + "\n")
    header_lines = "\n".join(
        f"headers[{json.dumps(key)}] = {json.dumps(value)}"
        for key, value in (headers or {}).items()
    )
    script = folder / f"{name}.lua"
    script.write_text(
        _LUA.replace("__METHOD__", method)
        .replace("__HEADERS__", header_lines)
        .replace("__IDS__", str(ids_file))
        .replace("__BUILD__", build)
    )
    done = subprocess.run(
        [
            wrk_binary(),
            f"-t{THREADS}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            base_url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    _drain(base_url)
    line = next(text for text in reversed(done.stdout.splitlines()) if text.startswith("{"))
    figures = json.loads(line)
    print(f"  {name}: {figures}", file=sys.stderr, flush=True)
    return Load(
        # Only answers that succeeded count: a scenario that fails fast must not look fast.
        rate=max(0, figures["requests"] - figures["failed"]) / figures["seconds"],
        p50_ms=figures["p50_ms"],
        p99_ms=figures["p99_ms"],
        failed=figures["failed"] + figures["socket_errors"],
    )


def pgbench_tps(url: str, clients: int, *, seconds: float) -> float:
    """TPS of pgbench's TPC-B-like transaction (its default script) on the same cluster."""
    match = re.match(r".*://(?P<user>[^@]+)@(?P<host>[^:/]+):(?P<port>\d+)/(?P<db>\w+)", url)
    assert match is not None
    pgbench = shutil.which("pgbench") or "/usr/lib/postgresql/15/bin/pgbench"
    target = ["-h", match["host"], "-p", match["port"], "-U", match["user"], match["db"]]
    # Scale 8: one branch row per client, as TPC-B sizes it, so T is not one row's lock queue.
    subprocess.run([pgbench, "-i", "-s", "8", "-q", *target], check=True, capture_output=True)
    result = subprocess.run(
        [
            pgbench,
            "-c",
            str(clients),
            "-j",
            str(min(clients, 2)),
            "-T",
            str(int(seconds)),
            *target,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    found = re.search(r"tps = ([0-9.]+)", result.stdout)
    assert found is not None, result.stdout
    return float(found[1])
