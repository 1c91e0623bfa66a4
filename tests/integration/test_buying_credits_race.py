"""Buying credits under real concurrency on PostgreSQL: approvals of one request, or Stripe's
deliveries of one paid session, racing in threads credit the pool exactly once, and an approval
racing a decline leaves one decision and the pool as that decision says.

These tests commit for real, on their own engine and a fresh org with e-mails unique across
runs (as tests/integration/test_concurrency.py does).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest
from sqlalchemy import Engine

from creditpool.domain.amounts import credits
from creditpool.domain.errors import RequestDecided
from creditpool.domain.model import TransferKind
from creditpool.domain.purchases import PurchaseRequestStatus
from creditpool.services import checkout, metering, orgs, purchase_requests, reports
from creditpool.storage.database import create_database_engine
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.factories import OPERATOR, make_user
from tests.support.stripe import session_event, stripe_signature, stripe_stand_in

THREADS = 8
WEBHOOK_SECRET = "whsec_race"
T = TypeVar("T")

pytestmark = pytest.mark.postgres_only


@pytest.fixture
def pg_engine(postgresql_url: str) -> Iterator[Engine]:
    """An engine with a connection for every racing thread, and one to spare."""
    engine = create_database_engine(postgresql_url, pool_size=THREADS + 2, max_overflow=2)
    yield engine
    engine.dispose()


def _fresh_org(engine: Engine) -> str:
    uow = UnitOfWork.for_engine(engine)
    owner = make_user(uow, "Owner", email=f"owner-{uuid.uuid4().hex}@race.test")
    return orgs.create_org(uow, name="Race class", owner_user_id=owner.id, actor=OPERATOR).id


def _race(engine: Engine, calls: list[Callable[[UnitOfWork], T]]) -> list[T | Exception]:
    """Run each call in a thread of its own, released together; return results or errors."""
    start = threading.Barrier(len(calls))
    outcomes: list[T | Exception] = [RuntimeError("not run")] * len(calls)

    def run(index: int) -> None:
        uow = UnitOfWork.for_engine(engine)
        start.wait()
        try:
            outcomes[index] = calls[index](uow)
        except Exception as error:  # the test looks at each: only domain refusals may appear
            outcomes[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def _purchases(engine: Engine, org_id: str) -> list[int]:
    uow = UnitOfWork.for_engine(engine)
    return [t.amount for t in reports.list_transfers(uow, org_id, kind=TransferKind.PURCHASE)]


def test_racing_approvals_credit_the_pool_once(pg_engine: Engine) -> None:
    org_id = _fresh_org(pg_engine)
    asked = purchase_requests.request_credits(
        UnitOfWork.for_engine(pg_engine), org_id, credits("30"), actor="user:owner"
    )

    def approve(uow: UnitOfWork) -> purchase_requests.PurchaseRequestView:
        return purchase_requests.approve_request(uow, org_id, asked.id, actor=OPERATOR)

    outcomes = _race(pg_engine, [approve] * THREADS)

    assert all(isinstance(o, purchase_requests.PurchaseRequestView) for o in outcomes), outcomes
    assert len({o.transfer_id for o in outcomes if not isinstance(o, Exception)}) == 1
    assert _purchases(pg_engine, org_id) == [credits("30")]
    reader = UnitOfWork.for_engine(pg_engine)
    with reader:
        assert metering.pool_balance(reader, org_id) == credits("30")


def test_an_approval_racing_a_decline_leaves_one_decision(pg_engine: Engine) -> None:
    org_id = _fresh_org(pg_engine)
    asked = purchase_requests.request_credits(
        UnitOfWork.for_engine(pg_engine), org_id, credits("7"), actor="user:owner"
    )

    def approve(uow: UnitOfWork) -> PurchaseRequestStatus:
        return purchase_requests.approve_request(uow, org_id, asked.id, actor=OPERATOR).status

    def decline(uow: UnitOfWork) -> PurchaseRequestStatus:
        return purchase_requests.decline_request(uow, org_id, asked.id, actor=OPERATOR).status

    outcomes = _race(pg_engine, [approve, decline] * (THREADS // 2))

    decided = {o for o in outcomes if not isinstance(o, Exception)}
    refused = [o for o in outcomes if isinstance(o, Exception)]
    assert len(decided) == 1, outcomes
    assert all(isinstance(error, RequestDecided) for error in refused), refused
    assert len(refused) == THREADS // 2  # every caller of the losing decision
    bought = _purchases(pg_engine, org_id)
    assert bought == ([credits("7")] if decided == {PurchaseRequestStatus.APPROVED} else [])


def test_racing_deliveries_of_a_paid_session_credit_it_once(pg_engine: Engine) -> None:
    org_id = _fresh_org(pg_engine)
    with stripe_stand_in() as stand_in:
        settings = checkout.StripeSettings(
            secret_key="sk_test_race",
            webhook_secret=WEBHOOK_SECRET,
            unit_price=50,
            currency="usd",
            api_base=stand_in.url,
        )
        opened = checkout.start_checkout(
            UnitOfWork.for_engine(pg_engine),
            org_id,
            credits("9"),
            settings=settings,
            success_url="http://creditpool.test/done",
            cancel_url="http://creditpool.test/cancelled",
            actor="user:owner",
        )
    event = session_event("checkout.session.completed", opened.provider_session_id, org_id)

    def deliver(uow: UnitOfWork) -> bool:
        signature = stripe_signature(event, WEBHOOK_SECRET)
        return checkout.receive_stripe_event(uow, event, signature, settings=settings).credited

    outcomes = _race(pg_engine, [deliver] * THREADS)

    assert sorted(outcomes, key=str) == [False] * (THREADS - 1) + [True], outcomes
    assert _purchases(pg_engine, org_id) == [credits("9")]
