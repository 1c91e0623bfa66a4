"""Durability under crashes: `creditpool serve` killed, and PostgreSQL crashed, mid-load.

Sixteen clients charge usage, allot and revoke, each write under its own idempotency key. Then
a process dies: the server (SIGKILL), or the database (an immediate stop, which kills every
backend at once, then a start, which recovers from the log). Every write that got no answer,
or a 503, is sent again with the same key until it is settled. Afterwards every acknowledged
write is in the ledger exactly once, as its answer named it; every retried key, sent once
more, replays that answer; the balances are what the answers add up to; nothing is
overdrawn; and `creditpool audit` finds the books sound.

The cluster waits for its commits (synchronous_commit=on): with it off, PostgreSQL answers a
commit before its log is written, and these tests find acknowledged writes missing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import httpx2 as httpx
from sqlalchemy import Engine

from creditpool.storage.database import POSTGRES_CONNECT_TIMEOUT_SECONDS
from tests.durability.books import (
    Books,
    assert_balances_follow_the_answers,
    assert_each_write_in_the_ledger_once,
    assert_every_write_settled_as_applied,
    assert_nothing_overdrawn,
    assert_replays_answer_the_same,
    read_books,
)
from tests.durability.load import (
    CLIENT_TIMEOUT_SECONDS,
    CLIENTS,
    Load,
    Org,
    Outcome,
    replay,
    settle,
)
from tests.support.postgres import Cluster
from tests.support.server import Server, free_port, running_server

# The rate limits would refuse a load test's clients, which is not what it tests.
SERVER_ENVIRONMENT = {"CREDITPOOL_RATE_LIMITS": "off"}
# While the database is down, every request is answered within this: none waits for a database
# that is not there longer than the server's connect timeout, with room for a machine busy
# with other tests (a 201 once took 5.9 s here with a browser test beside it). A request that
# hangs runs into CLIENT_TIMEOUT_SECONDS, twice this, and fails too.
ANSWER_WITHIN_SECONDS = POSTGRES_CONNECT_TIMEOUT_SECONDS + 3.0
OUTAGE_SECONDS = 1.5
# After the database is back, requests sent this much later all succeed again.
RECOVERED_WITHIN_SECONDS = 1.0


_STARTED = time.monotonic()


def _note(what: str) -> None:
    # A timeline, shown with a failure: when each step ended.
    print(f"{time.monotonic() - _STARTED:7.2f} s  {what}")


def _serve(stack: ExitStack, directory: Path, database: Cluster, port: int) -> Server:
    directory.mkdir()
    server = stack.enter_context(
        running_server(
            directory, database_url=database.url, port=port, environment=SERVER_ENVIRONMENT
        )
    )
    _note(f"server up on port {port}")
    return server


def _api(server: Server) -> str:
    return f"{server.url}/api/v1"


def _listed(outcomes: list[Outcome]) -> str:
    return "\n".join(outcome.describe() for outcome in outcomes[:10])


def _assert_books_sound(
    server: Server, engine: Engine, org: Org, before: Books, outcomes: list[Outcome]
) -> None:
    """Settle every write, replay the retried keys, and hold the ledger against the answers."""
    left = settle(_api(server), outcomes)
    _note(f"{len(left)} of {len(outcomes)} writes left unsettled by the clients, now settled")
    assert_every_write_settled_as_applied(outcomes)
    # The keys the crash touched, sent once more: each answers as it was settled.
    retried = [outcome for outcome in outcomes if len(outcome.answers) > 1]
    assert_replays_answer_the_same(replay(_api(server), retried))
    # Applied, then cut off before the answer: the retry found the key and replayed it.
    lost_answers = [o for o in retried if o.answers[-1].headers.get("idempotent-replayed")]
    _note(f"the {len(retried)} retried keys replayed; {len(lost_answers)} had been applied")
    # Read after the replays: they must not have changed anything either. The test's own pool
    # may hold connections that died with the database, and no pool pings: start it afresh.
    engine.dispose()
    assert_each_write_in_the_ledger_once(engine, org.id, before, outcomes)
    assert_balances_follow_the_answers(before, read_books(engine, org.id), outcomes)
    assert_nothing_overdrawn(engine)
    _note("ledger checked")
    audit = server.cli("audit")
    assert "the books are sound" in audit, audit
    _note("audited")


def test_a_server_killed_mid_load_loses_no_acknowledged_write_and_applies_no_key_twice(
    tmp_path: Path,
    database: Cluster,
    durable_engine: Engine,
    make_org: Callable[[Server, str], Org],
) -> None:
    port = free_port()
    with ExitStack() as first:
        server = _serve(first, tmp_path / "first", database, port)
        org = make_org(server, "killed-server")
        _note("org set up")
        before = read_books(durable_engine, org.id)
        with Load(_api(server), org, "killed-server") as load:
            load.wait_for_answers(CLIENTS * 2)
            killed_at = time.monotonic()
            server.process.kill()  # SIGKILL: no cleanup, no answers to requests in flight
            server.process.wait()
            _note(f"server killed after {load.answered()} writes")
            outcomes = load.stop()

    cut_off = [o for o in outcomes if o.first.status is None and o.first.started < killed_at]
    assert cut_off, f"the kill cut no request off; {len(outcomes)} were sent"
    wrong = [o for o in outcomes if any(a.status not in (None, 201) for a in o.answers)]
    assert not wrong, f"answers other than 201 around the kill:\n{_listed(wrong)}"

    with ExitStack() as second:
        server = _serve(second, tmp_path / "second", database, port)
        _assert_books_sound(server, durable_engine, org, before, outcomes)


def test_a_database_restarted_mid_load_answers_503_at_once_and_the_server_recovers_by_itself(
    tmp_path: Path,
    database: Cluster,
    durable_engine: Engine,
    make_org: Callable[[Server, str], Org],
) -> None:
    with ExitStack() as stack:
        server = _serve(stack, tmp_path / "server", database, free_port())
        org = make_org(server, "restarted-database")
        _note("org set up")
        before = read_books(durable_engine, org.id)
        with Load(_api(server), org, "restarted-database") as load:
            load.wait_for_answers(CLIENTS * 2)
            crashed_at = time.monotonic()
            database.crash()
            _note(f"database crashed after {load.answered()} writes")
            with httpx.Client(base_url=server.url, timeout=CLIENT_TIMEOUT_SECONDS) as browser:
                page = browser.get("/join/no-such-code")  # a page that reads the database
                health = browser.get("/healthz")
            time.sleep(OUTAGE_SECONDS)  # the outage lasts while the clients keep writing
            database.start()
            back_at = time.monotonic()
            _note(f"database back after {load.answered()} writes")
            # The server has this long to recover; the writes after it are the ones counted.
            time.sleep(RECOVERED_WITHIN_SECONDS)
            load.wait_for_answers(load.answered() + CLIENTS * 2)
            outcomes = load.stop()
            _note(f"load stopped after {len(outcomes)} writes")
        assert server.process.poll() is None, "the server died with its database"
        assert (page.status_code, page.headers["content-type"]) == (503, "text/html; charset=utf-8")
        assert "Try again in a moment" in page.text
        assert int(page.headers["retry-after"]) >= 1
        assert health.status_code == 503, health.text

        # A request that hung past the clients' timeout has no answer: it is "wrong" here.
        wrong = [o for o in outcomes if any(a.status not in (201, 503) for a in o.answers)]
        assert not wrong, f"answers other than 201 or 503:\n{_listed(wrong)}"
        answers = [answer for outcome in outcomes for answer in outcome.answers]
        # How long each request that met the outage waited once the outage began: one sent
        # earlier may have queued for locks before, which says nothing about the outage.
        waits = [
            (a.started + a.seconds - max(a.started, crashed_at), a)
            for a in answers
            if a.started <= back_at and a.started + a.seconds >= crashed_at
        ]
        _note(f"longest of {len(waits)} waits in the outage: {max(w for w, _ in waits):.2f} s")
        slow = [f"{w:.2f} s: {a.describe()}" for w, a in waits if w > ANSWER_WITHIN_SECONDS]
        assert not slow, f"answers in the outage slower than {ANSWER_WITHIN_SECONDS} s: {slow}"
        unavailable = [a for a in answers if a.status == 503]
        assert any(a.started + a.seconds >= crashed_at for a in unavailable), (
            "no request met the outage with a 503"
        )
        for answer in unavailable:
            assert answer.headers["content-type"].startswith("application/problem+json")
            assert answer.body["code"] == "unavailable", answer.describe()
            assert answer.body["status"] == 503, answer.describe()
            assert int(answer.headers["retry-after"]) >= 1, answer.headers
        recovered_at = back_at + RECOVERED_WITHIN_SECONDS
        late = [a.describe() for a in unavailable if a.started > recovered_at]
        assert not late, f"503 after the database was back: {late[:10]}"
        applied = [a for a in answers if a.started > recovered_at and a.status == 201]
        assert len(applied) >= CLIENTS, (
            f"only {len(applied)} writes applied once the database was back"
        )

        _assert_books_sound(server, durable_engine, org, before, outcomes)
