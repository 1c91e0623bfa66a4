"""`creditpool serve --workers 2`: two server processes answer on one port, each correct
against the other, on SQLite and PostgreSQL; stopping serve stops them all.

Which process answered a request is read from the operating system, not from the server: the
connection's socket, found in /proc/net/tcp, is open in exactly one process's file table.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import sqlite3
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from creditpool.app import app_from_environment
from tests.api.support import PASSWORD, bearer
from tests.support.server import STOP_WITHIN_SECONDS, Server, running_server

OPERATOR_KEY = "cpo-workers-test-key-0123456789-long-enough"
WORKERS = 2
ATTEMPTS = 200  # new connections tried before concluding a process never answers


def children(server: Server) -> set[int]:
    """The server processes serve started (its pids), from the process table."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile
        if int(fields[1]) == server.process.pid and b"spawn_main" in command:
            found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie waiting for its parent does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _socket_inode(server_port: int, client_port: int) -> str | None:
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            columns = line.split()
            local, remote = columns[1], columns[2]
            if (
                int(local.rsplit(":", 1)[1], 16) == server_port
                and int(remote.rsplit(":", 1)[1], 16) == client_port
            ):
                return columns[9]
    return None


def owner_of(connection: http.client.HTTPConnection, port: int, pids: set[int]) -> int | None:
    """The process among `pids` whose end of this open connection it is."""
    assert connection.sock is not None
    inode = _socket_inode(port, connection.sock.getsockname()[1])
    wanted = f"socket:[{inode}]"
    for pid in pids:
        for descriptor in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(descriptor) == wanted:
                    return pid
            except OSError:
                continue
    return None


def ask(
    port: int, method: str, path: str, token: str | None = None, body: Any = None
) -> tuple[int, Any, http.client.HTTPConnection]:
    """Send one request on a new connection, left open; return status, body and connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {**bearer(token), "content-type": "application/json"}
    try:
        connection.request(method, f"/api/v1{path}", json.dumps(body) if body else None, headers)
        response = connection.getresponse()
        data = response.read()
    except BaseException:
        connection.close()
        raise
    return response.status, json.loads(data) if data else None, connection


def ask_every_process(server: Server, pids: set[int], path: str, token: str) -> dict[int, int]:
    """GET `path` until each process has answered it once; return each one's status."""
    port = int(server.url.rsplit(":", 1)[1])
    answers: dict[int, int] = {}
    for _ in range(ATTEMPTS):
        status, _, connection = ask(port, "GET", path, token)
        owner = owner_of(connection, port, pids)
        connection.close()
        if owner is not None:
            answers.setdefault(owner, status)
        if set(answers) == pids:
            return answers
    pytest.fail(f"only {sorted(answers)} of {sorted(pids)} answered {ATTEMPTS} connections")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A `serve --workers 2` for the module's tests (three processes start slowly), per engine;
    each test makes an org of its own."""
    directory = tmp_path_factory.mktemp(f"served-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{directory / 'served.db'}"
    else:
        url = request.getfixturevalue("postgresql_url")
    environment = {"CREDITPOOL_OPERATOR_KEY": OPERATOR_KEY}
    with running_server(
        directory, "--workers", str(WORKERS), environment=environment, database_url=url
    ) as server:
        yield server


def call(server: Server, method: str, path: str, token: str, body: Any = None) -> Any:
    """One API call that must succeed; its body."""
    port = int(server.url.rsplit(":", 1)[1])
    status, answer, connection = ask(port, method, path, token, body)
    connection.close()
    assert status < 300, (method, path, status, answer)
    return answer


def an_org_with_a_key(server: Server) -> tuple[str, str, str, str, str]:
    """A new org with 100 credits, 60 of them its owner's: (org, owner's token, owner's member
    id, usage key, the key's id)."""
    email = f"owner-{uuid.uuid4().hex[:12]}@workers.test"
    call(server, "POST", "/users", "", {"email": email, "password": PASSWORD, "name": "Owner"})
    token = call(server, "POST", "/tokens", "", {"email": email, "password": PASSWORD})["token"]
    org = call(server, "POST", "/orgs", OPERATOR_KEY, {"name": "Workers", "owner_email": email})
    call(server, "POST", f"/orgs/{org['id']}/purchases", OPERATOR_KEY, {"amount": "100"})
    member = call(server, "GET", "/me", token)["memberships"][0]["member_id"]
    allotment = {"member_ids": [member], "amount": "60"}
    call(server, "POST", f"/orgs/{org['id']}/allocations", token, allotment)
    key = call(
        server, "POST", f"/orgs/{org['id']}/api-keys", token, {"name": "farm", "scopes": ["usage"]}
    )
    return org["id"], token, member, key["key"], key["id"]


def test_two_processes_answer_and_charge_together_exactly(served: Server) -> None:
    pids = children(served)
    assert len(pids) == WORKERS, pids
    org, _, member, key, _ = an_org_with_a_key(served)

    # Forty charges at once over both processes: each succeeds, none is lost or doubled.
    def charge(number: int) -> int:
        port = int(served.url.rsplit(":", 1)[1])
        status, _, connection = ask(
            port, "POST", f"/orgs/{org}/members/{member}/usage", key, {"amount": "1"}
        )
        connection.close()
        return status

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(charge, range(40)))
    assert statuses == [201] * 40
    assert set(ask_every_process(served, pids, f"/orgs/{org}/balance", key).values()) == {200}
    wallet = call(served, "GET", f"/orgs/{org}/members/{member}", key)
    assert wallet["credits_available"] == "20"
    assert served.cli("audit").strip().endswith("the books are sound")


def test_a_key_revoked_through_one_process_is_refused_by_every_process_at_once(
    served: Server,
) -> None:
    pids = children(served)
    org, owner, _, key, key_id = an_org_with_a_key(served)
    # Every process has just accepted the key (whatever it may remember of it)...
    assert ask_every_process(served, pids, f"/orgs/{org}/balance", key) == dict.fromkeys(pids, 200)

    call(served, "DELETE", f"/orgs/{org}/api-keys/{key_id}", owner)

    # ...and every one refuses it the moment the revocation is answered.
    assert ask_every_process(served, pids, f"/orgs/{org}/balance", key) == dict.fromkeys(pids, 401)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "terminate"])
def test_stopping_serve_stops_every_process(tmp_path: Path, stop: signal.Signals) -> None:
    with running_server(tmp_path, "--workers", str(WORKERS)) as server:
        pids = children(server)
        assert len(pids) == WORKERS
        assert all(alive(pid) for pid in pids)
        server.process.send_signal(stop)
        assert server.process.wait(timeout=STOP_WITHIN_SECONDS) == 0
        assert [pid for pid in pids if alive(pid)] == []


def test_a_server_process_never_migrates_serve_did_it_once_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = tmp_path / "empty.db"
    monkeypatch.setenv("CREDITPOOL_DATABASE_URL", f"sqlite:///{database}")
    monkeypatch.setenv("CREDITPOOL_SECRET_KEY", "a session secret for the test")
    application = app_from_environment()
    application.state.engine.dispose()
    with sqlite3.connect(database) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert "alembic_version" not in tables


def usage_counted(port: int) -> tuple[float, http.client.HTTPConnection]:
    """The committed usage transfers /metrics reports, read on a new connection left open."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    for line in text.splitlines():
        if line.startswith('creditpool_transfers_total{kind="usage"}'):
            return float(line.split()[-1]), connection
    return 0.0, connection


def test_metrics_from_any_process_count_what_every_process_did(served: Server) -> None:
    pids = children(served)
    port = int(served.url.rsplit(":", 1)[1])
    org, _, member, key, _ = an_org_with_a_key(served)
    before, connection = usage_counted(port)
    connection.close()
    charged = 0
    answered_by: set[int | None] = set()
    while set(answered_by) != pids or charged < 10:  # both processes charged some
        assert charged < ATTEMPTS, f"only {answered_by} of {pids} charged"
        status, _, connection = ask(
            port, "POST", f"/orgs/{org}/members/{member}/usage", key, {"amount": "0.5"}
        )
        answered_by.add(owner_of(connection, port, pids))
        connection.close()
        assert status == 201
        charged += 1
    # Whichever process answers the scrape, it reports the charges of both.
    readings: dict[int, float] = {}
    for _ in range(ATTEMPTS):
        counted, connection = usage_counted(port)
        owner = owner_of(connection, port, pids)
        connection.close()
        if owner is not None:
            readings[owner] = counted
        if set(readings) == pids:
            break
    assert set(readings) == pids
    assert {counted - before for counted in readings.values()} == {charged}
