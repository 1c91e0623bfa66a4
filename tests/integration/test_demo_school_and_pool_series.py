"""The bulk demo school keeps the books sound on both engines, and the pool's kept series
(days rolled up, the rest read as it is) gives the same balances as the transfers."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from creditpool.demo import fill_school
from creditpool.domain.amounts import credits
from creditpool.domain.model import MemberStatus, Seat
from creditpool.services import audit, reports, roster
from creditpool.services.credits import allocate_credits, record_purchase
from creditpool.services.roster import RosterFilter
from creditpool.services.targets import Target
from creditpool.storage.schema import Org, PoolDay, PoolRollup
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.clock import FakeClock
from tests.support.factories import OPERATOR, add_members, make_org


def test_two_schools_in_one_database_keep_the_books_and_the_seat_counts(uow: UnitOfWork) -> None:
    first = fill_school(uow, members=120)
    second = fill_school(uow, members=60, name="Second school")

    assert first.org_id != second.org_id
    for school, size in ((first, 120), (second, 60)):
        report = audit.audit(uow, school.org_id)
        assert report.clean, report.breaches
        with uow:
            org = uow.session.get(Org, school.org_id)
            assert org is not None
            seats = (org.licensed_seats, org.unlicensed_seats, org.external_seats)
        active = roster.list_roster(uow, school.org_id, limit=1).total
        removed = roster.list_roster(
            uow, school.org_id, RosterFilter(status=MemberStatus.REMOVED), limit=1
        ).total
        assert sum(seats) == active == size + 1 - removed  # the owner too
        assert removed > 0
        assert seats[1] > 0
        assert seats[2] > 0
        external = roster.list_roster(uow, school.org_id, RosterFilter(seat=Seat.EXTERNAL))
        assert external.total == seats[2]
        assert roster.metric_names(uow, school.org_id) == ["frames", "renders"]
        assert school.owner_password in " ".join(school.lines)
    assert audit.audit(uow).clean


def test_the_demo_schools_history_is_read_from_its_days(uow: UnitOfWork) -> None:
    school = fill_school(uow, members=40)

    history = reports.pool_history(uow, school.org_id)

    with uow:
        days = uow.session.scalar(
            select(func.count()).select_from(PoolDay).where(PoolDay.org_id == school.org_id)
        )
    assert days == 3  # the purchase, the first allotment, the last: one day each
    balance = reports.get_balance(uow, school.org_id)
    assert history.points[-1].balance == balance.available
    assert [p.balance for p in history.points] == sorted(
        (p.balance for p in history.points), reverse=True
    )


def test_rolled_up_days_and_the_tail_since_add_up_to_the_transfers(
    uow: UnitOfWork, clock: FakeClock
) -> None:
    org = make_org(uow, purchase="100")
    [ada, ben] = add_members(uow, org.id, 2)
    start = clock.now()
    for _day in range(3):
        clock.advance(hours=8)
        allocate_credits(uow, org.id, Target.members([ada.id]), credits("1"), actor=OPERATOR)
        allocate_credits(uow, org.id, Target.members([ben.id]), credits("2"), actor=OPERATOR)
        clock.advance(hours=16)
    # Two batches just now, younger than GRACE: read as they are, a point each.
    allocate_credits(uow, org.id, Target.members([ada.id]), credits("1"), actor=OPERATOR)
    allocate_credits(uow, org.id, Target.members([ben.id]), credits("2"), actor=OPERATOR)
    first_read = reports.pool_history(uow, org.id)
    clock.advance(minutes=11)

    rolled = reports.pool_history(uow, org.id)
    record_purchase(uow, org.id, credits("5"), actor=OPERATOR)
    after = reports.pool_history(uow, org.id)

    # A point a day (where it ended: the purchase and that day's allotments together), then a
    # point a batch for the transfers younger than GRACE.
    days = [
        (timedelta(hours=8), credits("97")),
        (timedelta(days=1, hours=8), credits("94")),
        (timedelta(days=2, hours=8), credits("91")),
    ]
    assert [(p.at - start, p.balance) for p in first_read.points] == [
        *days,
        (timedelta(days=3), credits("90")),
        (timedelta(days=3), credits("88")),
    ]
    # Rolled into today's row once GRACE is over.
    assert [(p.at - start, p.balance) for p in rolled.points] == [
        *days,
        (timedelta(days=3), credits("88")),
    ]
    assert [p.balance for p in after.points][-2:] == [credits("88"), credits("93")]
    with uow:
        mark = uow.session.get(PoolRollup, org.id)
        assert mark is not None
        assert mark.balance == credits("88")
    # A second read rolls nothing more up and reads the same.
    assert reports.pool_history(uow, org.id) == after
