"""One idempotency store, purged in one place: the worker's pass forgets a request's
Idempotency-Key after its 24 hours and a batch usage event's key after its 30 days, each by
its own rule, and never one before its time."""

from __future__ import annotations

from creditpool.config import Config
from creditpool.domain.amounts import credits
from creditpool.services.credits import allocate_credits, record_purchase
from creditpool.services.targets import Target
from creditpool.services.usage_batch import charge_usage_batch
from creditpool.storage.schema import IdempotencyRecord, UsageEvent
from creditpool.storage.unit_of_work import UnitOfWork
from creditpool.worker import run_once
from tests.support.clock import FakeClock
from tests.support.factories import OPERATOR, add_members, make_org


def _kept(uow: UnitOfWork, org_id: str) -> tuple[bool, bool]:
    """Whether the request key "buy" and the usage key "use" are still stored."""
    with uow:
        request = uow.session.get(IdempotencyRecord, (org_id, OPERATOR, "buy"))
        usage = uow.session.get(UsageEvent, (org_id, "use"))
        return request is not None, usage is not None


def test_the_worker_forgets_each_kind_of_key_after_its_own_time(
    uow: UnitOfWork, clock: FakeClock
) -> None:
    org = make_org(uow, purchase="100")
    [student] = add_members(uow, org.id, 1)
    allocate_credits(uow, org.id, Target.members([student.id]), credits("10"), actor=OPERATOR)
    bought = record_purchase(uow, org.id, credits("1"), actor=OPERATOR, idempotency_key="buy")
    event = {"key": "use", "member_id": student.id, "amount": "1"}
    [charged] = charge_usage_batch(uow, org.id, [event], actor=OPERATOR)
    assert charged.code is None
    assert _kept(uow, org.id) == (True, True)

    clock.advance(hours=23, minutes=59)
    assert run_once(uow, Config()).keys_forgotten == 0
    assert _kept(uow, org.id) == (True, True)

    clock.advance(minutes=2)  # a day and a minute: only the request's key is past its time
    assert run_once(uow, Config()).keys_forgotten == 1
    assert _kept(uow, org.id) == (False, True)
    [replayed] = charge_usage_batch(uow, org.id, [event], actor=OPERATOR)
    assert replayed.replayed
    assert replayed.transfer_id == charged.transfer_id
    again = record_purchase(uow, org.id, credits("1"), actor=OPERATOR, idempotency_key="buy")
    assert again.id != bought.id  # the key is free again: a new purchase

    clock.advance(days=30)
    assert run_once(uow, Config()).keys_forgotten == 2  # the second "buy" and "use"
    assert _kept(uow, org.id) == (False, False)
    [fresh] = charge_usage_batch(uow, org.id, [event], actor=OPERATOR)
    assert not fresh.replayed
    assert fresh.transfer_id != charged.transfer_id
