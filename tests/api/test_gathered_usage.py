"""Single usage charges sent at once to one org are gathered into shared transactions
(api/gathering.py): over a real server, on each engine, each request is still answered on its
own (refused ones too), every answer is the one charging them one by one would give, and the
books are exact."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.api.test_serve_workers import OPERATOR_KEY, an_org_with_a_key, ask, call
from tests.support.server import Server, running_server

CLIENTS = 16


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One server process, per engine, that gathers what its clients send at once."""
    directory: Path = tmp_path_factory.mktemp(f"gathered-{request.param}")
    url = (
        f"sqlite:///{directory / 'gathered.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgresql_url")
    )
    environment = {"CREDITPOOL_OPERATOR_KEY": OPERATOR_KEY}
    with running_server(directory, environment=environment, database_url=url) as server:
        yield server


def test_charges_sent_at_once_are_gathered_and_each_answered_as_if_alone(served: Server) -> None:
    org, _, member, key, _ = an_org_with_a_key(served)  # the member's wallet holds 60 credits
    port = int(served.url.rsplit(":", 1)[1])
    # 40 charges of 1 credit, and among them requests each refused for its own reason.
    asked: list[tuple[str, str, dict[str, Any]]] = [(key, member, {"amount": "1"})] * 40
    asked += [("cpk.not.a.key", member, {"amount": "1"})] * 4  # 401
    asked += [(key, "mem_nobody", {"amount": "1"})] * 4  # 404
    asked += [(key, member, {"amount": "500"})] * 4  # 409: the wallet never holds that much
    asked += [(key, member, {"amount": "1", "metrics": {"bad name": 1}})] * 4  # 422

    def send(request: tuple[str, str, dict[str, Any]]) -> tuple[int, Any]:
        token, whom, body = request
        status, answer, connection = ask(
            port, "POST", f"/orgs/{org}/members/{whom}/usage", token, body
        )
        connection.close()
        return status, answer

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        answers = list(pool.map(send, asked))

    statuses = Counter(status for status, _ in answers)
    assert statuses == {201: 40, 401: 4, 404: 4, 409: 4, 422: 4}
    codes = Counter(answer["code"] for status, answer in answers if status != 201)
    assert codes == {
        "unauthenticated": 4,
        "not_found": 4,
        "insufficient_credits": 4,
        "validation_error": 4,
    }
    # Each charge answers the wallet as it left it: one after the other, 59 down to 20.
    left = sorted(int(answer["member"]["credits_available"]) for s, answer in answers if s == 201)
    assert left == list(range(20, 60))
    assert call(served, "GET", f"/orgs/{org}/members/{member}", key)["credits_available"] == "20"

    # Some of them shared a transaction: one instant (the transaction's) on several transfers.
    ledger = call(served, "GET", f"/orgs/{org}/transfers?kind=usage&limit=100", key)["items"]
    assert len(ledger) == 40
    assert max(Counter(transfer["created_at"] for transfer in ledger).values()) > 1
    assert served.cli("audit").strip().endswith("the books are sound")


def test_reads_sent_at_once_are_each_answered_as_if_alone(served: Server) -> None:
    org, _, member, key, _ = an_org_with_a_key(served)
    port = int(served.url.rsplit(":", 1)[1])
    alone = call(served, "GET", f"/orgs/{org}/balance", key)
    past = "/balance?at=2020-01-01T00:00:00Z"
    asked = [(key, "/balance")] * 20 + [(key, f"/members/{member}/access")] * 20
    asked += [("cpk.not.a.key", "/balance")] * 4  # 401
    asked += [(key, "/members/mem_nobody/access")] * 4  # 404
    asked += [(key, past)] * 4  # 422: a balance is never read in the past

    def send(request: tuple[str, str]) -> tuple[int, Any]:
        token, path = request
        status, answer, connection = ask(port, "GET", f"/orgs/{org}{path}", token)
        connection.close()
        return status, answer

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        answers = list(pool.map(send, asked))

    assert [status for status, _ in answers] == [200] * 40 + [401] * 4 + [404] * 4 + [422] * 4
    # Nothing moved meanwhile: every balance is the lone one (the burn aside, which goes on).
    moved = ("purchased", "allocated", "used", "burn_rate_per_day")
    assert all({f: b[f] for f in moved} == {f: alone[f] for f in moved} for _, b in answers[:20])
    assert all(answer == {"access": True, "reason": "ok"} for _, answer in answers[20:40])
