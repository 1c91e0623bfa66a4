"""The webhook events of lots, on each engine, sent by the worker to a real local receiver that
checks every signature: `credits.expiring` once, a week before a lot lapses, and
`credits.expired` with what lapsed, from the pool and the wallets, whoever posts the expiry.
The test clock moves by hand and the worker's pass is `run_once`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from creditpool.api.schemas import Balance, Lot
from creditpool.config import Config
from creditpool.domain.amounts import credits
from creditpool.domain.errors import InvalidInput
from creditpool.domain.policies import SettingsChange
from creditpool.services import holds, lot_views, webhooks
from creditpool.services.credits import allocate_credits, record_purchase
from creditpool.services.lookups import load_org
from creditpool.services.targets import Target
from creditpool.services.usage import charge_usage
from creditpool.services.views import balance_view
from creditpool.storage.unit_of_work import UnitOfWork
from creditpool.worker import PassReport, run_once
from tests.support.clock import FakeClock
from tests.support.factories import OPERATOR, add_members, make_org
from tests.support.webhook_receiver import Receiver, webhook_receiver

# No seat burn: what lapses is exactly what was bought less what was spent.
FREE_SEATS = SettingsChange(rate_licensed=0, rate_unlicensed=0, rate_external=0)
CONFIG = Config(webhook_private_networks=True)  # the receiver listens on 127.0.0.1
LOT_EVENTS = ["credits.expiring", "credits.expired"]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as running:
        yield running


def _subscribe(
    uow: UnitOfWork, org_id: str, receiver: Receiver, path: str, names: list[str]
) -> None:
    issued = webhooks.create_endpoint(
        uow, org_id, url=f"{receiver.url}/{path}", events=names, actor=OPERATOR
    )
    receiver.more_secrets.append(issued.secret)


def _pass(uow: UnitOfWork) -> PassReport:
    """A worker pass, then another that sends what the first wrote."""
    report = run_once(uow, CONFIG)
    run_once(uow, CONFIG)
    return report


def _sent(receiver: Receiver, path: str) -> list[dict[str, Any]]:
    assert all(item.verified for item in receiver.received)
    return [item.event for item in receiver.received if item.path == f"/hooks/{path}"]


def _listed_lot(uow: UnitOfWork, org_id: str, lot_id: str) -> dict[str, Any]:
    """The lot as GET /orgs/{org}/lots answers it now."""
    with uow:
        org = load_org(uow, org_id)
        [view] = [view for view in lot_views.list_lots(uow, org, uow.now) if view.id == lot_id]
    listed: dict[str, Any] = Lot.of(view).model_dump(mode="json")
    return listed


def _balance(uow: UnitOfWork, org_id: str) -> dict[str, Any]:
    """The org's Balance as the API answers it now."""
    with uow:
        view = balance_view(uow, load_org(uow, org_id), uow.now)
    shown: dict[str, Any] = Balance.of(view).model_dump(mode="json")
    return shown


def test_a_lot_is_announced_once_a_week_before_it_lapses_and_again_when_it_has(
    uow: UnitOfWork, clock: FakeClock, receiver: Receiver
) -> None:
    org = make_org(uow, settings=FREE_SEATS)
    [student] = add_members(uow, org.id, 1)
    _subscribe(uow, org.id, receiver, "lots", LOT_EVENTS)
    _subscribe(uow, org.id, receiver, "other", ["credits.low", "usage.recorded"])
    expires_at = clock.now() + timedelta(days=10)
    bought = record_purchase(
        uow, org.id, credits("100"), actor=OPERATOR, priority=10, expires_at=expires_at
    )
    record_purchase(uow, org.id, credits("5"), actor=OPERATOR)  # never lapses
    [(lot_id, _)] = [(share.lot_id, share.amount) for share in bought.lots]
    allocate_credits(uow, org.id, Target.members([student.id]), credits("30"), actor=OPERATOR)

    # Ten days ahead: too early.
    assert _pass(uow).lots_warned == 0
    assert receiver.received == []

    # Six days ahead: announced, with the lot as GET /orgs/{org}/lots shows it.
    clock.advance(days=4)
    assert _pass(uow).lots_warned == 1
    [expiring] = _sent(receiver, "lots")
    assert expiring["type"] == "credits.expiring"
    assert expiring["org_id"] == org.id
    assert expiring["data"] == _listed_lot(uow, org.id, lot_id)
    assert expiring["data"] | {"id": "", "created_at": ""} == {
        "id": "",
        "source": "purchase",
        "parent_lot_id": None,
        "amount": "100",
        "in_pool": "70",
        "in_wallets": "30",
        "held": "0",
        "used": "0",
        "metered": "0",
        "moved": "0",
        "expired": "0",
        "priority": 10,
        "expires_at": "2026-01-11T00:00:00Z",
        "created_at": "",
    }

    # Later passes of the week say nothing more.
    for _ in range(3):
        clock.advance(days=1)
        assert _pass(uow).lots_warned == 0
    assert len(_sent(receiver, "lots")) == 1

    # Past the expiry: what the pool and the wallet held of the lot lapsed.
    clock.advance(days=3)
    _pass(uow)
    [_, expired] = _sent(receiver, "lots")
    assert expired["type"] == "credits.expired"
    assert expired["data"] == {
        "lots": [{"lot_id": lot_id, "amount": "100"}],
        "amount": "100",
        "from_pool": "70",
        "from_wallets": "30",
        "balance": _balance(uow, org.id),
    }
    assert expired["data"]["balance"]["available"] == "5"
    assert _pass(uow).lots_warned == 0
    assert len(_sent(receiver, "lots")) == 2
    # The endpoint for other events heard of neither.
    assert _sent(receiver, "other") == []


def test_a_lot_spent_before_its_week_is_not_announced(
    uow: UnitOfWork, clock: FakeClock, receiver: Receiver
) -> None:
    org = make_org(uow, settings=FREE_SEATS)
    [student] = add_members(uow, org.id, 1)
    _subscribe(uow, org.id, receiver, "lots", LOT_EVENTS)
    record_purchase(
        uow, org.id, credits("10"), actor=OPERATOR, expires_at=clock.now() + timedelta(days=3)
    )
    allocate_credits(uow, org.id, Target.members([student.id]), credits("10"), actor=OPERATOR)
    charge_usage(uow, org.id, student.id, credits("10"), actor=OPERATOR)
    assert _pass(uow).lots_warned == 0
    clock.advance(days=4)
    _pass(uow)
    assert receiver.received == []  # nothing held it: nothing lapsed either


def test_what_a_hold_kept_lapses_when_captured_with_the_balance_after_the_capture(
    uow: UnitOfWork, clock: FakeClock, receiver: Receiver
) -> None:
    org = make_org(uow, settings=FREE_SEATS)
    [student] = add_members(uow, org.id, 1)
    bought = record_purchase(
        uow, org.id, credits("20"), actor=OPERATOR, expires_at=clock.now() + timedelta(days=1)
    )
    [lot_id] = [share.lot_id for share in bought.lots]
    record_purchase(uow, org.id, credits("5"), actor=OPERATOR)  # never lapses
    allocate_credits(uow, org.id, Target.members([student.id]), credits("8"), actor=OPERATOR)
    hold = holds.place_hold(
        uow, org.id, student.id, credits("8"), expires_in=3 * 86_400, actor=OPERATOR
    )
    _subscribe(uow, org.id, receiver, "lots", ["credits.expired"])

    # The expiry is posted by the first write past it: the pool's 12 lapse, the held 8 stay
    # (the allotment then comes from the lot that never lapses).
    clock.advance(days=2)
    allocate_credits(uow, org.id, Target.members([student.id]), credits("0.5"), actor=OPERATOR)
    captured = holds.capture_hold(uow, org.id, hold.id, credits("3"), actor=OPERATOR)
    assert captured.transfer.amount == credits("3")
    _pass(uow)
    # Sent in either order: their ids say which was written first.
    first, second = (
        event["data"] for event in sorted(_sent(receiver, "lots"), key=lambda e: e["id"])
    )
    assert (first["lots"], first["from_pool"], first["from_wallets"]) == (
        [{"lot_id": lot_id, "amount": "12"}],
        "12",
        "0",
    )
    # The capture let 5 go of the lapsed lot: they lapse with it, and the balance counts the 3.
    assert (second["lots"], second["amount"], second["from_wallets"]) == (
        [{"lot_id": lot_id, "amount": "5"}],
        "5",
        "5",
    )
    assert second["balance"] == _balance(uow, org.id)
    assert (second["balance"]["used"], second["balance"]["allocated"]) == ("3", "0.5")


def test_the_lot_events_may_be_subscribed_to_and_an_unknown_name_may_not(
    uow: UnitOfWork, receiver: Receiver
) -> None:
    org = make_org(uow)
    issued = webhooks.create_endpoint(
        uow, org.id, url=receiver.url, events=LOT_EVENTS, actor=OPERATOR
    )
    assert issued.endpoint.events == sorted(LOT_EVENTS)
    with pytest.raises(InvalidInput):
        webhooks.create_endpoint(
            uow, org.id, url=receiver.url, events=["credits.expire"], actor=OPERATOR
        )
