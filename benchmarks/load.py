"""Load from a separate process: wrk with a Lua script made for each scenario.

wrk keeps 16 connections busy from 2 threads and reports every request's latency; the script
below picks a random member per request, gives each allocation its own idempotency key and
prints, when wrk is done, one JSON line with the count, the duration, the 50th and 99th
percentile latencies and the requests that failed (non-2xx answers, socket errors).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

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
    line = next(text for text in reversed(done.stdout.splitlines()) if text.startswith("{"))
    figures = json.loads(line)
    print(f"  {name}: {figures}", file=sys.stderr, flush=True)
    return Load(
        rate=figures["requests"] / figures["seconds"],
        p50_ms=figures["p50_ms"],
        p99_ms=figures["p99_ms"],
        failed=figures["failed"] + figures["socket_errors"],
    )
