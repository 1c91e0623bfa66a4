"""Webhooks over the API, on both engines: the owner's endpoints, and events delivered to a real
local HTTP receiver that checks every signature with the `standardwebhooks` package.

The worker is driven by hand (`run_once`) with the test clock, so retries come when the clock
says, not after a sleep.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from creditpool.config import Config
from creditpool.domain.errors import Conflict
from creditpool.domain.model import Role, Seat
from creditpool.services import alerts, mail, members, webhooks
from creditpool.services.lookups import load_org
from creditpool.services.transactions import run_write
from creditpool.storage.schema import WebhookDelivery, WebhookEvent
from creditpool.storage.unit_of_work import UnitOfWork
from creditpool.worker import run_once
from tests.api.support import World, csrf_of, problem, signed_in_browser
from tests.support.clock import FakeClock
from tests.support.webhook_receiver import Receiver, webhook_receiver


@pytest.fixture
def config(config: Config) -> Config:
    """The tests' receiver listens on 127.0.0.1: this installation lets webhooks go there."""
    return replace(config, webhook_private_networks=True)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as running:
        yield running


def _worker(app: FastAPI, config: Config) -> Any:
    """One pass of the worker over the test's database."""
    return run_once(UnitOfWork(app.state.session_factory, app.state.clock), config)


def _subscribe(world: World, receiver: Receiver, events: list[str]) -> dict[str, Any]:
    made = world.api.call(
        "POST",
        f"/orgs/{world.org_id}/webhooks",
        token=world.owner,
        json={"url": receiver.url, "events": events, "description": "farm"},
    )
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    receiver.secret = body["secret"]
    return body


def _deliveries(world: World, endpoint_id: str) -> list[dict[str, Any]]:
    listed = world.api.call(
        "GET", f"/orgs/{world.org_id}/webhooks/{endpoint_id}/deliveries", token=world.owner
    )
    assert listed.status_code == 200, listed.text
    items: list[dict[str, Any]] = listed.json()["items"]
    return items


def test_the_owner_manages_endpoints_and_their_secret_is_shown_once(world: World) -> None:
    api, org = world.api, world.org_id
    made = api.call(
        "POST",
        f"/orgs/{org}/webhooks",
        token=world.owner,
        json={"url": "https://vendor.example/hooks", "events": ["usage.recorded"]},
    )
    assert made.status_code == 201, made.text
    assert made.headers["cache-control"] == "no-store"
    endpoint = made.json()
    assert endpoint["secret"].startswith("whsec_")
    assert len(base64.b64decode(endpoint["secret"].removeprefix("whsec_"))) >= 24
    assert (endpoint["url"], endpoint["events"], endpoint["enabled"]) == (
        "https://vendor.example/hooks",
        ["usage.recorded"],
        True,
    )

    listed = api.call("GET", f"/orgs/{org}/webhooks", token=world.owner).json()["items"]
    assert [item["id"] for item in listed] == [endpoint["id"]]
    assert "secret" not in listed[0]

    changed = api.call(
        "PATCH",
        f"/orgs/{org}/webhooks/{endpoint['id']}",
        token=world.owner,
        json={"enabled": False, "events": ["member.joined", "credits.low"]},
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["enabled"], changed.json()["events"]) == (
        False,
        ["credits.low", "member.joined"],
    )

    gone = api.call("DELETE", f"/orgs/{org}/webhooks/{endpoint['id']}", token=world.owner)
    assert gone.status_code == 204, gone.text
    assert api.call("GET", f"/orgs/{org}/webhooks", token=world.owner).json()["items"] == []
    problem(
        api.call("PATCH", f"/orgs/{org}/webhooks/{endpoint['id']}", token=world.owner, json={}),
        404,
        "not_found",
    )


def test_only_the_owner_reaches_webhooks_and_bad_endpoints_are_refused(world: World) -> None:
    api, org = world.api, world.org_id
    body = {"url": "https://vendor.example/hooks", "events": ["usage.recorded"]}
    problem(
        api.call("POST", f"/orgs/{org}/webhooks", token=world.manager, json=body), 403, "forbidden"
    )
    problem(api.call("GET", f"/orgs/{org}/webhooks", token=world.students[0]), 403, "forbidden")
    problem(api.call("GET", f"/orgs/{org}/webhooks", token=world.usage_key), 403, "forbidden")
    problem(api.call("GET", f"/orgs/{org}/webhooks", token=world.stranger), 404, "not_found")
    problem(api.call("GET", f"/orgs/{org}/webhooks"), 401, "unauthenticated")

    for bad in (
        {"url": "https://vendor.example/hooks", "events": ["usage.created"]},  # unknown event
        {"url": "https://vendor.example/hooks", "events": []},
        {"url": "ftp://vendor.example/hooks", "events": ["usage.recorded"]},
        {"url": "javascript:alert(1)", "events": ["usage.recorded"]},
        {"url": "https://", "events": ["usage.recorded"]},
    ):
        problem(
            api.call("POST", f"/orgs/{org}/webhooks", token=world.owner, json=bad),
            422,
            "validation_error",
        )
    assert api.call("GET", f"/orgs/{org}/webhooks", token=world.owner).json()["items"] == []

    # A retry with the same idempotency key makes no second endpoint (nor shows the secret).
    first = api.call("POST", f"/orgs/{org}/webhooks", token=world.owner, json=body, key="hook-1")
    again = api.call("POST", f"/orgs/{org}/webhooks", token=world.owner, json=body, key="hook-1")
    assert first.status_code == 201, first.text
    problem(again, 409, "already_exists")
    assert first.json()["secret"] not in again.text
    assert len(api.call("GET", f"/orgs/{org}/webhooks", token=world.owner).json()["items"]) == 1


def test_a_delivery_fails_on_purpose_then_is_retried_with_the_same_webhook_id(
    world: World, app: FastAPI, config: Config, clock: FakeClock, receiver: Receiver
) -> None:
    api, org = world.api, world.org_id
    endpoint = _subscribe(world, receiver, ["usage.recorded"])
    receiver.statuses = [500]  # the first attempt fails on purpose

    student = world.student_ids[0]
    api.call(
        "POST",
        f"/orgs/{org}/allocations",
        token=world.manager,
        json={"member_ids": [student], "amount": "10"},
    )
    charged = api.call(
        "POST",
        f"/orgs/{org}/members/{student}/usage",
        token=world.usage_key,
        json={"amount": "1.5", "metrics": {"renders": 1}},
    )
    assert charged.status_code == 201, charged.text

    assert _worker(app, config).webhook_attempts_failed == 1
    [failed] = receiver.received
    assert failed.verified
    assert failed.answered == 500
    [pending] = _deliveries(world, endpoint["id"])
    assert (pending["status"], pending["attempts"], pending["last_status_code"]) == (
        "pending",
        1,
        500,
    )
    assert pending["event"] == "usage.recorded"

    # Not due again before its 5 seconds are up.
    _worker(app, config)
    assert len(receiver.received) == 1
    clock.advance(seconds=5)
    assert _worker(app, config).webhooks_succeeded == 1

    first, second = receiver.received
    assert second.verified
    assert second.answered == 200
    assert second.webhook_id == first.webhook_id == pending["event_id"]
    assert second.body == first.body
    event = second.event
    assert event["id"] == pending["event_id"]
    assert event["id"].startswith("evt_")
    assert (event["type"], event["org_id"]) == ("usage.recorded", org)
    # The data is the charge exactly as the API answered it.
    assert event["data"] == charged.json()
    [done] = _deliveries(world, endpoint["id"])
    assert (done["status"], done["attempts"], done["last_status_code"]) == ("succeeded", 2, 200)
    assert done["next_attempt_at"] is None

    # Resent: the same event again, as a new delivery with the same webhook-id.
    resent = api.call(
        "POST",
        f"/orgs/{org}/webhooks/{endpoint['id']}/deliveries/{done['id']}/resend",
        token=world.owner,
    )
    assert resent.status_code == 202, resent.text
    assert resent.json()["event_id"] == done["event_id"]
    _worker(app, config)
    assert [item.webhook_id for item in receiver.received] == [done["event_id"]] * 3
    assert all(item.verified for item in receiver.received)


def test_retries_follow_the_schedule_and_give_up_after_eight_attempts(
    world: World, app: FastAPI, config: Config, clock: FakeClock, receiver: Receiver
) -> None:
    endpoint = _subscribe(world, receiver, ["org.paused"])
    receiver.statuses = [503] * 8
    paused = world.api.call("POST", f"/orgs/{world.org_id}/pause", token=world.owner)
    assert paused.status_code == 200, paused.text
    waits = [5, 300, 1800, 7200, 18000, 36000, 36000]
    _worker(app, config)
    for wait in waits:
        clock.advance(seconds=wait - 1)
        _worker(app, config)  # a second early: nothing goes out
        clock.advance(seconds=1)
        _worker(app, config)
    assert len(receiver.received) == 8
    [failed] = _deliveries(world, endpoint["id"])
    assert (failed["status"], failed["attempts"], failed["next_attempt_at"]) == (
        "failed",
        8,
        None,
    )
    assert receiver.received[0].event["data"]["paused"] is True
    clock.advance(days=2)
    _worker(app, config)
    assert len(receiver.received) == 8


def test_events_of_each_kind_reach_their_subscribers_only(
    world: World, app: FastAPI, config: Config, receiver: Receiver
) -> None:
    api, org = world.api, world.org_id
    _subscribe(
        world,
        receiver,
        [
            "member.joined",
            "member.removed",
            "allocation.created",
            "revocation.created",
            "org.paused",
            "org.resumed",
            "purchase.completed",
        ],
    )
    _, newcomer = api.sign_up("Newcomer")
    joined = api.call("POST", f"/join/{world.org['invite_code']}", token=newcomer)
    allotted = api.call(
        "POST",
        f"/orgs/{org}/allocations",
        token=world.manager,
        json={"member_ids": [joined.json()["id"], world.student_ids[0]], "amount": "3"},
    )
    revoked = api.call(
        "POST",
        f"/orgs/{org}/revocations",
        token=world.manager,
        json={"member_ids": [joined.json()["id"]], "amount": "1"},
    )
    removed = api.call("DELETE", f"/orgs/{org}/members/{joined.json()['id']}", token=world.owner)
    bought = api.call("POST", f"/orgs/{org}/purchases", token=world.operator, json={"amount": "7"})
    paused = api.call("POST", f"/orgs/{org}/pause", token=world.owner)
    resumed = api.call("POST", f"/orgs/{org}/resume", token=world.owner)
    # Usage is not subscribed to: charging writes no event.
    api.call(
        "POST",
        f"/orgs/{org}/members/{world.student_ids[0]}/usage",
        token=world.usage_key,
        json={"amount": "1"},
    ).raise_for_status()
    _worker(app, config)
    by_type = {event["type"]: event["data"] for event in receiver.verified_events()}
    assert by_type == {
        "member.joined": joined.json(),
        "allocation.created": allotted.json(),
        "revocation.created": revoked.json(),
        "member.removed": removed.json(),
        "purchase.completed": bought.json(),
        "org.paused": paused.json(),
        "org.resumed": resumed.json(),
    }


def test_a_change_rolled_back_sends_no_event(
    world: World, app: FastAPI, config: Config, receiver: Receiver
) -> None:
    _subscribe(world, receiver, ["member.joined"])
    uow = UnitOfWork(app.state.session_factory, app.state.clock)
    _, newcomer = world.api.sign_up("Newcomer")
    user_id = world.api.call("GET", "/me", token=newcomer).json()["user"]["id"]

    def join_then_fail() -> None:
        org = load_org(uow, world.org_id, lock=True)
        members.join(uow, org, user_id=user_id, role=Role.MEMBER, seat=Seat.LICENSED)
        assert uow.session.scalar(select(func.count()).select_from(WebhookEvent)) == 1
        raise Conflict("something after the join went wrong")

    with pytest.raises(Conflict):
        run_write(uow, join_then_fail)
    with uow:
        assert uow.session.scalar(select(func.count()).select_from(WebhookEvent)) == 0
        assert uow.session.scalar(select(func.count()).select_from(WebhookDelivery)) == 0
    _worker(app, config)
    assert receiver.received == []

    # The same join committed is delivered.
    joined = world.api.call("POST", f"/join/{world.org['invite_code']}", token=newcomer)
    _worker(app, config)
    assert [event["data"] for event in receiver.verified_events()] == [joined.json()]


def test_credits_low_and_depleted_fire_once_per_crossing_and_mail_the_governors(
    world: World, app: FastAPI, config: Config, receiver: Receiver
) -> None:
    api, org = world.api, world.org_id
    _subscribe(world, receiver, ["credits.low", "credits.depleted"])
    settings = api.call(
        "PATCH",
        f"/orgs/{org}/settings",
        token=world.owner,
        json={"alerts": {"low_balance": "50"}},
    )
    assert settings.status_code == 200, settings.text
    assert settings.json()["alerts"] == {"low_balance": "50", "days_left": None}
    got = api.call("GET", f"/orgs/{org}", token=world.owner).json()["settings"]["alerts"]
    assert got == {"low_balance": "50", "days_left": None}

    def allot(amount: str) -> None:
        done = api.call(
            "POST",
            f"/orgs/{org}/allocations",
            token=world.manager,
            json={"member_ids": [world.student_ids[0]], "amount": amount},
        )
        assert done.status_code == 201, done.text

    allot("40")  # 100 -> 60: above
    allot("20")  # 60 -> 40: crosses below 50
    balance_then = api.call("GET", f"/orgs/{org}/balance", token=world.owner).json()
    allot("10")  # 40 -> 30: still below, no second alert
    _worker(app, config)
    assert [event["type"] for event in receiver.verified_events()] == ["credits.low"]
    # The data is the pool's Balance as the API shows it at that instant.
    assert receiver.verified_events()[0]["data"] == balance_then
    assert balance_then["available"] == "40"

    api.call("POST", f"/orgs/{org}/purchases", token=world.operator, json={"amount": "30"})
    allot("15")  # 60 -> 45: below again after being above: fires again
    allot("45")  # 45 -> 0: depleted, once
    _worker(app, config)
    received = [event["type"] for event in receiver.verified_events()]
    # A pass sends its due deliveries together, so they may arrive in either order (webhooks
    # promise no order): the second pass brought one more low and the depletion.
    assert received[0] == "credits.low"
    assert sorted(received[1:]) == ["credits.depleted", "credits.low"]

    uow = UnitOfWork(app.state.session_factory, app.state.clock)
    owner = api.call("GET", "/me", token=world.owner).json()["user"]["email"]
    manager = api.call("GET", "/me", token=world.manager).json()["user"]["email"]
    student = api.call("GET", "/me", token=world.students[0]).json()["user"]["email"]
    for governor in (owner, manager):
        subjects = [
            subject for subject, _, _ in mail.outbox_for(uow, governor) if "credits" in subject
        ]
        assert sorted(subjects) == sorted(
            [
                "Render class is running low on credits",
                "Render class is running low on credits",
                "Render class has run out of credits",
            ]
        ), subjects
    assert not [subject for subject, _, _ in mail.outbox_for(uow, student) if "credits" in subject]


def test_the_seat_burn_brings_credits_low_from_the_worker_by_days_left(
    world: World, app: FastAPI, config: Config, clock: FakeClock, receiver: Receiver
) -> None:
    api, org = world.api, world.org_id
    _subscribe(world, receiver, ["credits.low"])
    # Four licensed seats at 365 credits a year each: 4 a day from a pool of 100 (25 days).
    changed = api.call(
        "PATCH",
        f"/orgs/{org}/settings",
        token=world.owner,
        json={"seat_rates": {"licensed": "365"}, "alerts": {"days_left": 14}},
    )
    assert changed.status_code == 200, changed.text
    _worker(app, config)
    assert receiver.received == []
    clock.advance(days=10)  # 60 left: 15 days
    _worker(app, config)
    assert receiver.received == []
    clock.advance(days=1, seconds=1)  # 56 left: 14 days minus a second
    _worker(app, config)
    clock.advance(days=1)
    _worker(app, config)
    [low] = receiver.verified_events()
    assert low["type"] == "credits.low"
    assert low["data"]["burn_rate_per_day"] == "4"


def test_the_worker_sweeps_every_burning_org_a_page_at_a_time(
    world: World, app: FastAPI, config: Config, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One org a page: the second org (a later, greater id) is on the sweep's second page.
    monkeypatch.setattr(alerts, "SWEEP_BATCH", 1)
    api = world.api
    owner = api.call("GET", "/me", token=world.owner).json()["user"]["email"]
    made = api.call(
        "POST", "/orgs", token=world.operator, json={"name": "Second", "owner_email": owner}
    )
    assert made.status_code == 201, made.text
    second = made.json()["id"]
    api.call("POST", f"/orgs/{second}/purchases", token=world.operator, json={"amount": "100"})
    # 4 credits a day from 100 in each: the world's four seats at 365, the second's one at 1460.
    for org, rate in ((world.org_id, "365"), (second, "1460")):
        changed = api.call(
            "PATCH",
            f"/orgs/{org}/settings",
            token=world.owner,
            json={"seat_rates": {"licensed": rate}, "alerts": {"days_left": 14}},
        )
        assert changed.status_code == 200, changed.text
    clock.advance(days=11, seconds=1)  # 56 left in each: 14 days minus a second
    _worker(app, config)
    with UnitOfWork(app.state.session_factory, clock) as uow:
        assert [load_org(uow, org).alert_low for org in (world.org_id, second)] == [True, True]


def test_settings_refuse_bad_alert_thresholds(world: World) -> None:
    api, org = world.api, world.org_id
    for bad, code in (
        ({"low_balance": "0"}, "invalid_amount"),
        ({"low_balance": "-1"}, "invalid_amount"),
        ({"days_left": 0}, "validation_error"),
        ({"days_left": "14"}, "validation_error"),
    ):
        problem(
            api.call("PATCH", f"/orgs/{org}/settings", token=world.owner, json={"alerts": bad}),
            422,
            code,
        )
    set_both = api.call(
        "PATCH",
        f"/orgs/{org}/settings",
        token=world.owner,
        json={"alerts": {"low_balance": 12.5, "days_left": 7}},
    )
    assert set_both.json()["alerts"] == {"low_balance": "12.5", "days_left": 7}
    one_off = api.call(
        "PATCH", f"/orgs/{org}/settings", token=world.owner, json={"alerts": {"days_left": None}}
    )
    assert one_off.json()["alerts"] == {"low_balance": "12.5", "days_left": None}
    problem(
        api.call(
            "PATCH", f"/orgs/{org}/settings", token=world.manager, json={"alerts": {"days_left": 3}}
        ),
        403,
        "forbidden",
    )


def test_credits_back_from_a_removed_member_end_a_crossing(
    world: World, app: FastAPI, config: Config, receiver: Receiver
) -> None:
    api, org = world.api, world.org_id
    _subscribe(world, receiver, ["credits.low"])
    api.call(
        "PATCH", f"/orgs/{org}/settings", token=world.owner, json={"alerts": {"low_balance": "50"}}
    ).raise_for_status()
    first, second = world.student_ids
    # 100 -> 40: low. Removing the student returns its 60: above again. 100 -> 40: low again.
    api.call(
        "POST",
        f"/orgs/{org}/allocations",
        token=world.manager,
        json={"member_ids": [first], "amount": "60"},
    ).raise_for_status()
    api.call("DELETE", f"/orgs/{org}/members/{first}", token=world.owner).raise_for_status()
    api.call(
        "POST",
        f"/orgs/{org}/allocations",
        token=world.manager,
        json={"member_ids": [second], "amount": "60"},
    ).raise_for_status()
    _worker(app, config)
    assert [event["type"] for event in receiver.verified_events()] == ["credits.low"] * 2


def test_an_endpoint_inside_the_installations_network_is_refused_unless_allowed(
    world: World, app: FastAPI, config: Config, receiver: Receiver
) -> None:
    endpoint = _subscribe(world, receiver, ["org.paused"])
    world.api.call("POST", f"/orgs/{world.org_id}/pause", token=world.owner).raise_for_status()
    report = _worker(app, replace(config, webhook_private_networks=False))
    assert report.webhook_attempts_failed == 1
    assert receiver.received == []  # never sent
    [refused] = _deliveries(world, endpoint["id"])
    assert (refused["status"], refused["attempts"], refused["last_status_code"]) == (
        "pending",
        1,
        None,
    )
    uow = UnitOfWork(app.state.session_factory, app.state.clock)
    [attempts] = webhooks.list_attempts(uow, world.org_id, [refused["id"]]).values()
    assert attempts[0].error == "refused: 127.0.0.1 is not a public address"


def test_the_webhooks_page_is_the_owners_and_its_forms_need_the_csrf_token(
    world: World, app: FastAPI, config: Config, receiver: Receiver
) -> None:
    api, org = world.api, world.org_id
    owner_email = api.call("GET", "/me", token=world.owner).json()["user"]["email"]
    manager_email = api.call("GET", "/me", token=world.manager).json()["user"]["email"]
    owner = signed_in_browser(app, owner_email)
    manager = signed_in_browser(app, manager_email)
    assert manager.get(f"/orgs/{org}/webhooks").status_code == 403

    page = owner.get(f"/orgs/{org}/webhooks")
    assert page.status_code == 200, page.text
    fields = {"url": receiver.url, "events": ["org.paused"], "description": "farm"}
    refused = owner.post(f"/orgs/{org}/webhooks", data=fields)
    assert refused.status_code == 403  # no CSRF token: nothing made
    by_manager = manager.post(
        f"/orgs/{org}/webhooks",
        data={**fields, "csrf_token": csrf_of(manager.get(f"/orgs/{org}").text)},
    )
    assert by_manager.status_code == 403
    assert api.call("GET", f"/orgs/{org}/webhooks", token=world.owner).json()["items"] == []

    made = owner.post(f"/orgs/{org}/webhooks", data={**fields, "csrf_token": csrf_of(page.text)})
    assert made.status_code == 200, made.text
    assert made.headers["cache-control"] == "no-store"
    [endpoint] = api.call("GET", f"/orgs/{org}/webhooks", token=world.owner).json()["items"]
    assert 'id="new-secret"' in made.text
    assert 'id="new-secret"' not in owner.get(f"/orgs/{org}/webhooks").text

    # A refused attempt (the installation keeps webhooks out of its own network) says why.
    api.call("POST", f"/orgs/{org}/pause", token=world.owner).raise_for_status()
    _worker(app, replace(config, webhook_private_networks=False))
    shown = owner.get(f"/orgs/{org}/webhooks").text
    assert "refused: 127.0.0.1 is not a public address" in shown
    assert f'data-endpoint="{endpoint["id"]}"' in shown

    bad = owner.post(
        f"/orgs/{org}/alerts",
        data={"low_balance": "0", "days_left": "", "csrf_token": csrf_of(shown)},
    )
    assert bad.status_code == 422
    assert "greater than zero" in bad.text
