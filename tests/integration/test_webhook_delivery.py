"""Webhook delivery in the service tier, on each engine: the outbox costs nothing to an org
nobody listens to, a worker killed mid-delivery loses nothing, and (on PostgreSQL) workers
racing for the same deliveries never send one twice."""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, event, func, select

from creditpool.domain.amounts import credits
from creditpool.domain.policies import SettingsChange
from creditpool.services import (
    event_bodies,
    holds,
    members,
    orgs,
    usage_batch,
    webhook_delivery,
    webhooks,
)
from creditpool.services.credits import allocate_credits
from creditpool.services.many_charges import Charge, Charged, charge_many
from creditpool.services.targets import Target
from creditpool.services.transactions import run_write
from creditpool.services.usage import charge_usage
from creditpool.storage.database import create_database_engine
from creditpool.storage.migrate import upgrade
from creditpool.storage.schema import WebhookAttempt, WebhookDelivery, WebhookEvent
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.clock import FakeClock
from tests.support.factories import OPERATOR, add_members, make_org
from tests.support.webhook_receiver import Receiver, webhook_receiver

KEY = "key:test"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as running:
        yield running


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[str]]:
    """Every statement the engine runs while the test does."""
    seen: list[str] = []

    def note(_connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    yield seen
    event.remove(engine, "before_cursor_execute", note)


def test_a_charge_nobody_listens_to_costs_no_extra_query(
    uow: UnitOfWork, statements: list[str], receiver: Receiver
) -> None:
    quiet = make_org(uow, purchase="100")
    [quiet_student] = add_members(uow, quiet.id, 1)
    listened = make_org(uow, purchase="100")
    [student] = add_members(uow, listened.id, 1)
    for org_id, member_id in ((quiet.id, quiet_student.id), (listened.id, student.id)):
        allocate_credits(uow, org_id, Target.members([member_id]), credits("10"), actor=OPERATOR)
    # An endpoint for other events only: the charge's event is skipped on the org row alone.
    endpoint = webhooks.create_endpoint(
        uow, listened.id, url=receiver.url, events=["member.joined"], actor=OPERATOR
    )
    charge_usage(uow, quiet.id, quiet_student.id, credits("1"), actor=KEY)  # warm both paths
    charge_usage(uow, listened.id, student.id, credits("1"), actor=KEY)

    seen = statements
    seen.clear()
    charge_usage(uow, quiet.id, quiet_student.id, credits("1"), actor=KEY)
    without_endpoints = len(seen)
    seen.clear()
    charge_usage(uow, listened.id, student.id, credits("1"), actor=KEY)
    assert len(seen) == without_endpoints
    # (The org's row is read as before, its `webhook_events` column with it: no table more.)
    assert not any("webhook_endpoints" in statement for statement in seen)
    assert not any("INTO webhook" in statement for statement in seen)

    # Subscribed, the charge writes its event and delivery: a few statements more.
    webhooks.update_endpoint(
        uow, listened.id, endpoint.endpoint.id, events=["member.joined", "usage.recorded"]
    )
    seen.clear()
    charge_usage(uow, listened.id, student.id, credits("1"), actor=KEY)
    assert any("INSERT INTO webhook_events" in statement for statement in seen)
    with uow:
        assert uow.session.scalar(select(func.count()).select_from(WebhookDelivery)) == 1


def test_a_worker_killed_mid_delivery_loses_nothing(
    uow: UnitOfWork, clock: FakeClock, receiver: Receiver
) -> None:
    org = make_org(uow)
    issued = webhooks.create_endpoint(
        uow, org.id, url=receiver.url, events=["org.paused"], actor=OPERATOR
    )
    receiver.secret = issued.secret
    orgs.set_paused(uow, org.id, paused=True, actor=OPERATOR)

    # A worker claims the delivery (its lease is committed) and dies before sending it.
    [claimed] = webhook_delivery.claim_due(uow)
    assert (
        webhook_delivery.deliver_due(uow, private_networks=True).succeeded == 0
    )  # leased: nobody else takes it
    assert receiver.received == []

    clock.advance(seconds=webhook_delivery.LEASE.total_seconds())
    assert webhook_delivery.deliver_due(uow, private_networks=True).succeeded == 1
    [sent] = receiver.received
    assert sent.verified
    assert sent.webhook_id == claimed.event_id
    with uow:
        delivery = uow.session.scalars(select(WebhookDelivery)).one()
        assert (delivery.status, delivery.attempts) == ("succeeded", 1)
        assert uow.session.scalar(select(func.count()).select_from(WebhookAttempt)) == 1


def test_a_disabled_endpoint_is_sent_nothing_until_enabled_and_a_deleted_one_never(
    uow: UnitOfWork, receiver: Receiver
) -> None:
    org = make_org(uow)
    issued = webhooks.create_endpoint(
        uow, org.id, url=receiver.url, events=["org.paused", "org.resumed"], actor=OPERATOR
    )
    receiver.secret = issued.secret
    endpoint_id = issued.endpoint.id
    orgs.set_paused(uow, org.id, paused=True, actor=OPERATOR)
    webhooks.update_endpoint(uow, org.id, endpoint_id, enabled=False)
    orgs.set_paused(uow, org.id, paused=False, actor=OPERATOR)  # nobody listens: no event
    webhook_delivery.deliver_due(uow, private_networks=True)
    assert receiver.received == []
    webhooks.update_endpoint(uow, org.id, endpoint_id, enabled=True)
    webhook_delivery.deliver_due(uow, private_networks=True)
    assert [event["type"] for event in receiver.verified_events()] == ["org.paused"]

    orgs.set_paused(uow, org.id, paused=True, actor=OPERATOR)
    owed = webhooks.list_deliveries(uow, org.id, endpoint_id)[0]
    assert owed.status == "pending"
    webhooks.delete_endpoint(uow, org.id, endpoint_id)
    webhook_delivery.deliver_due(uow, private_networks=True)
    assert len(receiver.received) == 1
    with uow:
        row = uow.session.get(WebhookDelivery, (org.id, owed.id))
        assert row is not None
        assert (row.status, row.attempts) == ("failed", 0)


@pytest.fixture
def fresh_postgresql(engine: Engine, postgresql_url: str) -> Iterator[str]:
    """A database of its own, migrated, for a test that commits for real; dropped after."""
    name = f"creditpool_webhooks_{uuid.uuid4().hex[:12]}"
    admin = postgresql_url.replace("postgresql+psycopg://", "postgresql://", 1)
    base, _, _ = postgresql_url.rpartition("/")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    url = f"{base}/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.mark.postgres_only  # row locks with SKIP LOCKED are PostgreSQL's
def test_two_workers_never_send_one_delivery_twice(fresh_postgresql: str) -> None:
    engine = create_database_engine(fresh_postgresql)
    clock = FakeClock()
    try:
        setup = UnitOfWork.for_engine(engine, clock)
        org = make_org(setup, purchase="1000")
        students = add_members(setup, org.id, 4)
        with webhook_receiver() as receiver:
            receiver.delay = 0.02  # sending takes a while: the workers' passes overlap
            for number in range(3):
                issued = webhooks.create_endpoint(
                    setup,
                    org.id,
                    url=f"{receiver.url}/{number}",
                    events=["allocation.created"],
                    actor=OPERATOR,
                )
                receiver.more_secrets.append(issued.secret)
            everyone = Target.members([student.id for student in students])
            for _ in range(20):
                allocate_credits(setup, org.id, everyone, credits("1"), actor=OPERATOR)
            errors: list[BaseException] = []

            def work() -> None:
                worker = UnitOfWork.for_engine(engine, clock)
                try:
                    # Until a pass claims nothing: the other worker holds the rest, or nothing
                    # is due. (Waiting for an empty backlog spun for ever after a failed
                    # attempt, whose retry the still clock never makes due.)
                    while True:
                        report = webhook_delivery.deliver_due(worker, private_networks=True)
                        if not (report.succeeded or report.failed_attempts):
                            break
                except BaseException as error:  # surfaced below
                    errors.append(error)

            threads = [threading.Thread(target=work, daemon=True) for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=120)
            assert not errors, errors
        sent = Counter((item.path, item.webhook_id) for item in receiver.received)
        assert len(sent) == 60  # 20 events, each to 3 endpoints
        assert set(sent.values()) == {1}  # none twice
        assert all(item.verified for item in receiver.received)
        check = UnitOfWork.for_engine(engine, clock)
        with check:
            deliveries = check.session.execute(
                select(WebhookDelivery.status, WebhookDelivery.attempts)
            ).all()
            attempts = check.session.scalar(select(func.count()).select_from(WebhookAttempt))
            failures = check.session.execute(
                select(WebhookAttempt.status_code, WebhookAttempt.error).where(
                    WebhookAttempt.error.is_not(None)
                )
            ).all()
        assert not failures, failures  # an attempt that failed says why
        assert [tuple(row) for row in deliveries] == [("succeeded", 1)] * 60
        assert attempts == 60
    finally:
        engine.dispose()


def _events_of(uow: UnitOfWork, event_type: str) -> list[dict[str, Any]]:
    with uow:
        bodies = uow.session.scalars(
            select(WebhookEvent.body)
            .where(WebhookEvent.type == event_type)
            .order_by(WebhookEvent.id)
        ).all()
    return [json.loads(body) for body in bodies]


def test_every_usage_path_emits_usage_recorded_with_the_member_after_it(
    uow: UnitOfWork, receiver: Receiver
) -> None:
    auto = SettingsChange(
        auto_enabled=True, auto_bundle=credits("5"), auto_max_per_member=credits("50")
    )
    org = make_org(uow, purchase="100", settings=auto)
    first, second, third = add_members(uow, org.id, 3)
    webhooks.create_endpoint(
        uow, org.id, url=receiver.url, events=["usage.recorded"], actor=OPERATOR
    )

    # A batch: two charged by the set-based path, one topped up by the slow path, one refused.
    allocate_credits(
        uow, org.id, Target.members([first.id, second.id]), credits("10"), actor=OPERATOR
    )
    results = usage_batch.charge_usage_batch(
        uow,
        org.id,
        [
            {"key": "a", "member_id": first.id, "amount": "1", "metrics": {"renders": 1}},
            {"key": "b", "member_id": second.id, "amount": "2"},
            {"key": "c", "member_id": third.id, "amount": "3"},  # topped up from the pool
            {"key": "d", "member_id": "mem_unknown", "amount": "1"},
        ],
        actor=KEY,
    )
    assert [result.code for result in results] == [None, None, None, "not_found"]
    emitted = _events_of(uow, "usage.recorded")
    assert sorted(event["data"]["transfer"]["id"] for event in emitted) == sorted(
        result.transfer_id for result in results if result.transfer_id
    )
    by_member = {event["data"]["member"]["id"]: event["data"] for event in emitted}
    for member in (first, second, third):
        assert by_member[member.id]["member"] == event_bodies.member_json(
            members.get_member(uow, org.id, member.id)
        )

    # Several single charges gathered into one transaction take the same path, with members.
    outcomes = run_write(
        uow,
        lambda: charge_many(
            uow,
            org.id,
            [
                Charge(first.id, credits("1"), None, None, KEY),
                Charge(second.id, credits("1"), None, None, KEY),
            ],
            with_members=True,
        ),
    )
    assert len(_events_of(uow, "usage.recorded")) == 5
    charged = [outcome for outcome in outcomes if isinstance(outcome, Charged)]
    assert [event["data"]["transfer"]["id"] for event in _events_of(uow, "usage.recorded")[3:]] == [
        outcome.transfer.id for outcome in charged
    ]

    # A hold's capture is usage too.
    hold = holds.place_hold(uow, org.id, first.id, credits("2"), actor=KEY)
    captured = holds.capture_hold(uow, org.id, hold.id, credits("1.5"), actor=KEY)
    last = _events_of(uow, "usage.recorded")[-1]
    assert last["data"] == event_bodies.usage_json(captured)
