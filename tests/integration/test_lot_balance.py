"""An org's balance when its lots expire: the pool's projection counts the expiries.

The org burns 365 credits a year for its owner's licensed seat: exactly 1 credit a day.
"""

from __future__ import annotations

from datetime import timedelta

from creditpool.domain.amounts import credits
from creditpool.domain.policies import SettingsChange
from creditpool.services import members, orgs, periods, reports
from creditpool.services.credits import allocate_credits, record_purchase
from creditpool.services.targets import Target
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.clock import FakeClock
from tests.support.factories import OPERATOR, make_org

A_DAY = SettingsChange(rate_licensed=credits("365"))


def test_an_expiry_that_empties_the_pool_is_when_it_runs_out(
    uow: UnitOfWork, clock: FakeClock
) -> None:
    org = make_org(uow, settings=A_DAY)
    start = clock.now()
    lapses = start + timedelta(days=5)
    record_purchase(uow, org.id, credits("10"), actor=OPERATOR, expires_at=lapses)
    now = reports.get_balance(uow, org.id)
    # The burn alone would last 10 days; the lot lapses on day 5 with 5 credits left: what
    # expires then is those 5, not the 10 it holds today.
    assert (now.available, now.depletes_at) == (credits("10"), lapses)
    assert [(soon.at, soon.amount) for soon in now.expiring] == [(lapses, credits("5"))]
    later = reports.get_balance(uow, org.id, at=start + timedelta(days=6))
    assert (later.available, later.metered, later.expired) == (0, credits("5"), credits("5"))
    # A lot that never expires, bought beside it, is burnt only once the first is gone: the
    # burn takes the soonest-expiring lot first, and the pool lasts 5 days plus 20.
    record_purchase(uow, org.id, credits("20"), actor=OPERATOR)
    both = reports.get_balance(uow, org.id)
    assert both.depletes_at == start + timedelta(days=25)
    assert [(soon.at, soon.amount) for soon in both.expiring] == [(lapses, credits("5"))]
    on_day_6 = reports.get_balance(uow, org.id, at=start + timedelta(days=6))
    assert (on_day_6.available, on_day_6.expired) == (credits("19"), credits("5"))


def test_the_expiry_posted_agrees_with_the_projection(uow: UnitOfWork, clock: FakeClock) -> None:
    org = make_org(uow, settings=A_DAY)
    start = clock.now()
    record_purchase(
        uow, org.id, credits("10"), actor=OPERATOR, expires_at=start + timedelta(days=5)
    )
    record_purchase(uow, org.id, credits("20"), actor=OPERATOR)
    projected = reports.get_balance(uow, org.id, at=start + timedelta(days=7))
    clock.advance(days=7)
    # The next write posts the burn to day 5, the 5 credits that lapse, and the burn since.
    record_purchase(uow, org.id, credits("1"), actor=OPERATOR)
    posted = reports.get_balance(uow, org.id)
    assert (posted.available, posted.metered, posted.expired) == (
        projected.available + credits("1"),
        projected.metered,
        projected.expired,
    )
    assert posted.expired == credits("5")


def test_a_list_of_orgs_and_a_persons_memberships_post_an_expiry_passed(
    uow: UnitOfWork, clock: FakeClock
) -> None:
    org = make_org(uow)
    record_purchase(
        uow, org.id, credits("10"), actor=OPERATOR, expires_at=clock.now() + timedelta(days=1)
    )
    clock.advance(days=2)
    (listed,) = orgs.list_orgs(uow, org_id=org.id)
    assert (listed.balance.available, listed.balance.expired) == (0, credits("10"))
    assert [t.amount for t in reports.list_transfers(uow, org.id, kind="expiry")] == [credits("10")]

    other = make_org(uow)
    record_purchase(
        uow, other.id, credits("4"), actor=OPERATOR, expires_at=clock.now() + timedelta(days=1)
    )
    clock.advance(days=2)
    (owner,) = members.list_members(uow, other.id)
    members.memberships_of(uow, owner.user_id)
    assert [t.amount for t in reports.list_transfers(uow, other.id, kind="expiry")] == [
        credits("4")
    ]


def test_what_expires_is_what_the_burn_leaves_in_the_pool_and_all_the_wallets_hold(
    uow: UnitOfWork, clock: FakeClock
) -> None:
    org = make_org(uow, settings=A_DAY)
    (owner,) = members.list_members(uow, org.id)
    lapses = clock.now() + timedelta(days=5)
    record_purchase(uow, org.id, credits("3"), actor=OPERATOR, expires_at=lapses)
    record_purchase(uow, org.id, credits("20"), actor=OPERATOR)
    # The burn takes the 3 expiring credits in 3 days: none of them is left on day 5.
    assert reports.get_balance(uow, org.id).expiring == ()
    # One of them in the owner's wallet does not burn: it is what lapses on day 5.
    allocate_credits(uow, org.id, Target.members([owner.id]), credits("1"), actor=OPERATOR)
    balance = reports.get_balance(uow, org.id)
    assert [(soon.at, soon.amount) for soon in balance.expiring] == [(lapses, credits("1"))]
    clock.advance(days=5)
    periods.settle_due(uow, org.id)  # posts the expiry, as the first write would
    after = reports.get_balance(uow, org.id)
    # 23 bought, 1 allotted (of the expiring lot), 5 days burnt (the 2 left of the expiring
    # lot, then 3 of the other).
    assert (after.expired, after.available, after.allocated) == (credits("1"), credits("17"), 0)


def test_an_instant_the_burn_empties_first_makes_room_for_a_later_one(
    uow: UnitOfWork, clock: FakeClock
) -> None:
    org = make_org(uow, settings=A_DAY)
    day = [clock.now() + timedelta(days=number) for number in range(9)]
    # Spent first, and burnt by day 1: nothing of it is left to lapse on day 3.
    record_purchase(uow, org.id, credits("1"), actor=OPERATOR, expires_at=day[3], priority=0)
    for number in range(4, 9):
        record_purchase(uow, org.id, credits("10"), actor=OPERATOR, expires_at=day[number])
    listed = [(soon.at, soon.amount) for soon in reports.get_balance(uow, org.id).expiring]
    # Five instants still: the burn takes 3 of the day-4 lot, then 1 of each later one.
    assert listed == [
        (day[4], credits("7")),
        (day[5], credits("9")),
        (day[6], credits("9")),
        (day[7], credits("9")),
        (day[8], credits("9")),
    ]
