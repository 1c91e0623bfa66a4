"""A charge and a period's settlement racing on PostgreSQL: the reclaim never takes credits a
charge spent, whichever of the two gets the rows first.

Each test holds one of the two transactions open at the decisive point and starts the other
in a thread, which must wait for the first one's row locks; only then does the first commit.
These tests commit for real (own engine, a fresh org, unique e-mails), like
test_concurrency.py.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text

from creditpool.domain.amounts import credits
from creditpool.domain.model import Period, Role, Seat, TransferKind
from creditpool.domain.policies import SettingsChange
from creditpool.services import audit, members, orgs, periods, reports, usage
from creditpool.services import credits as credit_service
from creditpool.services.targets import Target
from creditpool.services.views import MemberView, OrgView, UsageResult
from creditpool.storage.database import create_database_engine
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.clock import FakeClock
from tests.support.factories import OPERATOR, make_user

FARM = "api-key:farm"
MONDAY = datetime(2026, 1, 5, tzinfo=UTC)  # the clock's first week ends here
BEFORE = MONDAY - timedelta(seconds=1)
AFTER = MONDAY + timedelta(seconds=1)


@pytest.fixture
def pg_engine(postgresql_url: str) -> Iterator[Engine]:
    engine = create_database_engine(postgresql_url, pool_size=4, max_overflow=2)
    yield engine
    engine.dispose()


def email() -> str:
    return f"period-race-{uuid.uuid4().hex}@example.test"


def weekly_class(engine: Engine, *, by_hand: str = "0") -> tuple[OrgView, MemberView]:
    """A class with a weekly budget (bundles of 5, 10 a week, reclaim on) whose student used 1
    of a bundle of 5 (4 of it left), then was allotted `by_hand` credits."""
    setup = UnitOfWork.for_engine(engine, FakeClock())
    owner = make_user(setup, "Owner", email=email())
    settings = SettingsChange(
        auto_enabled=True,
        auto_bundle=credits("5"),
        auto_max_per_member=credits("10"),
        auto_period=Period.WEEK,
        period_set=True,
        auto_reclaim=True,
    )
    org = orgs.create_org(
        setup, name="Race", owner_user_id=owner.id, settings=settings, actor=OPERATOR
    )
    credit_service.record_purchase(setup, org.id, credits("100"), actor=OPERATOR)
    student = members.add_member(
        setup,
        org.id,
        user_id=make_user(setup, email=email()).id,
        role=Role.MEMBER,
        seat=Seat.LICENSED,
        actor=OPERATOR,
    )
    usage.charge_usage(setup, org.id, student.id, credits("1"), actor=FARM)
    if credits(by_hand):
        credit_service.allocate_credits(
            setup, org.id, Target.members([student.id]), credits(by_hand), actor=OPERATOR
        )
    return org, student


def waits_for_a_lock(engine: Engine) -> bool:
    """Whether some session of the database is waiting for a row lock right now."""
    with engine.connect() as connection:
        waiting = connection.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
        ).scalar_one()
    return int(waiting) > 0


def until_blocked(engine: Engine, thread: threading.Thread) -> None:
    """Wait until the thread is stuck on a row lock (or give up after 10 s)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and thread.is_alive() and not waits_for_a_lock(engine):
        time.sleep(0.02)
    assert thread.is_alive(), "the second transaction did not wait for the first"


def final_figures(engine: Engine, org_id: str, member_id: str) -> tuple[list[int], MemberView]:
    reader = UnitOfWork.for_engine(engine, FakeClock(AFTER))
    reclaimed = [
        t.amount for t in reports.list_transfers(reader, org_id, kind=TransferKind.RECLAIM)
    ]
    assert audit.audit(reader, org_id).breaches == []
    return reclaimed, members.get_member(reader, org_id, member_id)


@pytest.mark.postgres_only
def test_a_charge_first_is_counted_before_the_reclaim(pg_engine: Engine) -> None:
    # 4 of the week's automatic credits and 10 allotted by hand sit in the wallet.
    org, student = weekly_class(pg_engine, by_hand="10")
    # The charge, a second before Monday, debits the wallet and stays uncommitted.
    charging = UnitOfWork.for_engine(pg_engine, FakeClock(BEFORE))
    settled: list[periods.Settled | None] = []
    with charging:
        charged = usage.apply_usage(charging, org.id, student.id, credits("3"), None, None, FARM)
        assert charged.member.credits_available == credits("11")
        # A second after Monday, the settlement must wait for the charge's wallet lock.
        settling = UnitOfWork.for_engine(pg_engine, FakeClock(AFTER))
        thread = threading.Thread(
            target=lambda: settled.append(periods.settle_due(settling, org.id))
        )
        thread.start()
        until_blocked(pg_engine, thread)
        charging.commit()
    thread.join(timeout=30)
    # 5 came in automatically and 4 were used: 1 is reclaimed. Had the settlement read the
    # usage before the charge committed, it would have taken 4, three of them allotted by hand.
    assert settled == [periods.Settled(credits("1"), 1)]
    reclaimed, after = final_figures(pg_engine, org.id, student.id)
    assert reclaimed == [credits("1")]
    assert (after.credits_available, after.credits_used) == (credits("10"), credits("4"))


@pytest.mark.postgres_only
def test_a_settlement_first_makes_the_charge_wait_and_count_in_the_new_week(
    pg_engine: Engine,
) -> None:
    org, student = weekly_class(pg_engine)
    settling = UnitOfWork.for_engine(pg_engine, FakeClock(AFTER))
    results: list[UsageResult] = []
    with settling:
        locked = periods.lock_org(settling, org.id)
        assert locked is not None
        assert periods.settle_locked(settling, locked) == periods.Settled(credits("4"), 1)
        # The charge after Monday finds the boundary passed and waits for the org's lock.
        charging = UnitOfWork.for_engine(pg_engine, FakeClock(AFTER))
        thread = threading.Thread(
            target=lambda: results.append(
                usage.charge_usage(charging, org.id, student.id, credits("3"), actor=FARM)
            )
        )
        thread.start()
        until_blocked(pg_engine, thread)
        settling.commit()
    thread.join(timeout=30)
    # The 4 left went back once; the charge then needed a bundle of the new week.
    (result,) = results
    assert result.auto_allocated == credits("5")
    assert result.member.auto_allocated_this_period == credits("5")
    assert result.member.credits_available == credits("2")
    reclaimed, after = final_figures(pg_engine, org.id, student.id)
    assert reclaimed == [credits("4")]
    assert after.period_ends_at == MONDAY + timedelta(days=7)
