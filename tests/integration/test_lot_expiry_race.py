"""A charge and a lot's expiry racing on PostgreSQL: the expiry never posts credits a charge
spent, and a charge after the expiry never spends an expired credit, whichever transaction
gets the rows first.

As in test_period_race.py, one transaction is held open at the decisive point while the other
starts in a thread and must wait for its row locks; only then does the first commit.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from creditpool.domain.amounts import credits
from creditpool.domain.errors import InsufficientCredits
from creditpool.domain.model import Role, Seat, TransferKind
from creditpool.services import audit, members, orgs, periods, reports, usage
from creditpool.services import credits as credit_service
from creditpool.services.targets import Target
from creditpool.services.views import MemberView, OrgView
from creditpool.storage.database import create_database_engine
from creditpool.storage.unit_of_work import UnitOfWork
from tests.integration.test_period_race import until_blocked
from tests.support.clock import FakeClock
from tests.support.factories import OPERATOR, make_user

FARM = "api-key:farm"
EXPIRY = datetime(2026, 1, 5, tzinfo=UTC)
BEFORE = EXPIRY - timedelta(seconds=1)
AFTER = EXPIRY + timedelta(seconds=1)


@pytest.fixture
def pg_engine(postgresql_url: str) -> Iterator[Engine]:
    engine = create_database_engine(postgresql_url, pool_size=4, max_overflow=2)
    yield engine
    engine.dispose()


def email() -> str:
    return f"lot-race-{uuid.uuid4().hex}@example.test"


def trial_class(engine: Engine) -> tuple[OrgView, MemberView]:
    """A class whose student holds 10 credits of a trial lot that expires at EXPIRY, and
    whose pool keeps 5 more of it."""
    setup = UnitOfWork.for_engine(engine, FakeClock())
    owner = make_user(setup, "Owner", email=email())
    org = orgs.create_org(setup, name="Race", owner_user_id=owner.id, actor=OPERATOR)
    credit_service.record_purchase(
        setup, org.id, credits("15"), actor=OPERATOR, priority=10, expires_at=EXPIRY
    )
    student = members.add_member(
        setup,
        org.id,
        user_id=make_user(setup, email=email()).id,
        role=Role.MEMBER,
        seat=Seat.LICENSED,
        actor=OPERATOR,
    )
    credit_service.allocate_credits(
        setup, org.id, Target.members([student.id]), credits("10"), actor=OPERATOR
    )
    return org, student


def expired_amounts(engine: Engine, org_id: str) -> list[tuple[str, int]]:
    """The expiry transfers, by account, once the books are checked sound."""
    reader = UnitOfWork.for_engine(engine, FakeClock(AFTER))
    assert audit.audit(reader, org_id).breaches == []
    expired = reports.list_transfers(reader, org_id, kind=TransferKind.EXPIRY)
    return sorted((t.debit_account, t.amount) for t in expired)


@pytest.mark.postgres_only
def test_a_charge_before_the_expiry_is_spent_before_the_rest_lapses(pg_engine: Engine) -> None:
    org, student = trial_class(pg_engine)
    # The charge, a second before the expiry, debits the wallet and stays uncommitted.
    charging = UnitOfWork.for_engine(pg_engine, FakeClock(BEFORE))
    with charging:
        charged = usage.apply_usage(charging, org.id, student.id, credits("3"), None, None, FARM)
        assert charged.transfer.lots[0].amount == credits("3")
        # A second after it, posting the expiry must wait for the charge's wallet.
        expiring = UnitOfWork.for_engine(pg_engine, FakeClock(AFTER))
        thread = threading.Thread(target=lambda: periods.settle_due(expiring, org.id))
        thread.start()
        until_blocked(pg_engine, thread)
        charging.commit()
    thread.join(timeout=30)
    # What lapsed is what the charge left: 7 in the wallet, 5 in the pool.
    wallet = f"wallet:{student.id}"
    assert expired_amounts(pg_engine, org.id) == [("pool", credits("5")), (wallet, credits("7"))]


@pytest.mark.postgres_only
def test_a_charge_after_the_expiry_waits_for_it_and_finds_nothing_to_spend(
    pg_engine: Engine,
) -> None:
    org, student = trial_class(pg_engine)
    expiring = UnitOfWork.for_engine(pg_engine, FakeClock(AFTER))
    refused: list[Exception] = []

    def charge() -> None:
        try:
            usage.charge_usage(
                UnitOfWork.for_engine(pg_engine, FakeClock(AFTER)),
                org.id,
                student.id,
                credits("3"),
                actor=FARM,
            )
        except InsufficientCredits as error:
            refused.append(error)

    with expiring:
        locked = periods.lock_org(expiring, org.id)
        assert locked is not None
        from creditpool.services import expiry

        assert expiry.post_due(expiring, locked) == credits("15")
        # The charge after the expiry finds it passed and waits for the org's lock.
        thread = threading.Thread(target=charge)
        thread.start()
        until_blocked(pg_engine, thread)
        expiring.commit()
    thread.join(timeout=30)
    assert len(refused) == 1
    wallet = f"wallet:{student.id}"
    assert expired_amounts(pg_engine, org.id) == [("pool", credits("5")), (wallet, credits("10"))]
