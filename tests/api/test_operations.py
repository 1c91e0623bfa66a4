"""What an operator's tools see: /readyz and /metrics, on both engines.

/readyz answers 200 with the database reached and its schema at the newest migration, and 503
problem+json otherwise (a database out of reach, a schema left behind). /metrics counts requests
by route template and status, and transfers by kind only once their transaction commits: a
refused allocation counts as a request, never as transfers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from creditpool.app import create_app
from creditpool.config import Config
from creditpool.storage.database import create_database_engine
from creditpool.storage.migrate import upgrade
from tests.api.support import Api, World

METRICS_TOKEN = "a-metrics-token-for-the-tests-0123456789"


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition text (0 when the series is absent)."""
    wanted = ",".join(f'{label}="{value}"' for label, value in sorted(labels.items()))
    for line in text.splitlines():
        found = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        if found and found.group(1) == name:
            present = ",".join(sorted((found.group(2) or "").split(","))) if labels else ""
            if present == wanted:
                return float(found.group(3))
    return 0.0


def test_ready_when_the_database_answers_at_the_newest_migration(api: Api) -> None:
    answer = api.client.get("/readyz")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"database": "ok", "migrations": "current"}


def alone(engine: Engine) -> Iterator[TestClient]:
    config = Config(database_url=str(engine.url), secret_key="a session secret for the tests")
    with TestClient(create_app(config, engine), raise_server_exceptions=False) as client:
        yield client
    engine.dispose()


def test_not_ready_while_a_migration_is_pending(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'behind.db'}"
    upgrade(url, "0005")
    for client in alone(create_database_engine(url)):
        answer = client.get("/readyz")
        assert answer.status_code == 503
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["code"] == "unavailable"
        assert "creditpool db upgrade" in answer.json()["detail"]
        assert answer.headers["retry-after"] == "5"
    upgrade(url)
    for client in alone(create_database_engine(url)):
        assert client.get("/readyz").status_code == 200


def test_not_ready_without_a_database() -> None:
    # A port nothing listens on: the connection is refused at once.
    unreachable = create_database_engine("postgresql://nobody@127.0.0.1:9/none")
    for client in alone(unreachable):
        assert client.get("/healthz").status_code == 503
        answer = client.get("/readyz")
        assert answer.status_code == 503
        assert answer.json()["code"] == "unavailable"


def test_metrics_count_requests_and_committed_transfers(api: Api, world: World) -> None:
    org, students = world.org_id, world.student_ids
    before = api.client.get("/metrics")
    assert before.status_code == 200
    assert before.headers["content-type"].startswith("text/plain")
    route = "/api/v1/orgs/{org}/allocations"

    given = api.call(
        "POST",
        f"/orgs/{org}/allocations",
        token=world.owner,
        json={"member_ids": students, "amount": "5"},
    )
    assert given.status_code == 201, given.text
    refused = api.call(
        "POST",
        f"/orgs/{org}/allocations",
        token=world.owner,
        json={"member_ids": students, "amount": "1000"},
    )
    assert refused.status_code == 409, refused.text

    after = api.client.get("/metrics").text
    for status, added in (("201", 1), ("409", 1)):
        counted = sample(
            after, "creditpool_http_requests_total", method="POST", route=route, status=status
        )
        was = sample(
            before.text, "creditpool_http_requests_total", method="POST", route=route, status=status
        )
        assert counted - was == added, (status, counted, was)
    transfers_before = sample(before.text, "creditpool_transfers_total", kind="allocation")
    transfers_after = sample(after, "creditpool_transfers_total", kind="allocation")
    assert transfers_after - transfers_before == len(students)  # the refusal wrote none
    assert (
        sample(after, "creditpool_http_request_duration_seconds_count", method="POST", route=route)
        >= 2
    )
    # The outbox's backlog is read from the database (see the test below).
    assert 'creditpool_webhook_deliveries{status="pending"} ' in after
    assert "creditpool_webhook_deliveries_due " in after
    # A path is never a label: the org's id appears nowhere.
    assert org not in after


def test_metrics_want_their_token_when_one_is_set(engine: Engine) -> None:
    config = Config(
        database_url=str(engine.url),
        secret_key="a session secret for the tests",
        metrics_token=METRICS_TOKEN,
    )
    with TestClient(create_app(config, engine)) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            refused = client.get("/metrics", headers=headers)
            assert refused.status_code == 401
            assert refused.json()["code"] == "unauthenticated"
            assert "creditpool_" not in refused.text
        allowed = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert allowed.status_code == 200
        assert "creditpool_http_requests_total" in allowed.text


def test_metrics_show_the_outbox_backlog_and_what_is_due(api: Api, world: World) -> None:
    org = world.org_id
    made = api.call(
        "POST",
        f"/orgs/{org}/webhooks",
        token=world.owner,
        json={"url": "https://hooks.vendor.example/in", "events": ["allocation.created"]},
    )
    assert made.status_code == 201, made.text
    before = api.client.get("/metrics").text
    given = api.call(
        "POST",
        f"/orgs/{org}/allocations",
        token=world.owner,
        json={"member_ids": world.student_ids, "amount": "1"},
    )
    assert given.status_code == 201, given.text
    after = api.client.get("/metrics").text
    pending = ("creditpool_webhook_deliveries", {"status": "pending"})
    assert sample(after, pending[0], **pending[1]) - sample(before, pending[0], **pending[1]) == 1
    due = sample(after, "creditpool_webhook_deliveries_due")
    assert due - sample(before, "creditpool_webhook_deliveries_due") == 1
    # A disabled endpoint is sent nothing: its delivery waits, but is not due.
    disabled = api.call(
        "PATCH",
        f"/orgs/{org}/webhooks/{made.json()['id']}",
        token=world.owner,
        json={"enabled": False},
    )
    assert disabled.status_code == 200, disabled.text
    later = api.client.get("/metrics").text
    assert sample(later, *pending[:1], **pending[1]) == sample(after, pending[0], **pending[1])
    assert sample(later, "creditpool_webhook_deliveries_due") == due - 1
