"""Budgets per period: a render class in Paris where each student gets 10 credits a week.

The instructor sets automatic allocation to bundles of 5 up to 10 credits per student per week,
in the Europe/Paris time zone, with what is left at the end of a week going back to the pool.
The class buys 100 credits. For five weeks, from Monday 16 March 2026, the student renders
(3 credits a render, one big render of 10 in week 4):

- each render that finds the wallet short brings in a bundle of 5, until 10 came in that week;
  past that the farm is refused until Monday;
- at each boundary, what is left of the week's automatic credits goes back to the pool as a
  `reclaim`: nobody runs the worker in weeks 2, 3 and 5 (the week's first render settles the
  boundary first); in week 4 the worker settles it before anyone renders;
- weeks start on Monday at 00:00 in Paris: 23:00 UTC in winter, 22:00 UTC after the clocks go
  forward on Sunday 29 March, so week 2 lasts 167 hours.

The figures after each week's renders (pool, the student's wallet, what came in automatically
that week, when the week ends in UTC, and renders refused):

    week  starts (Paris)   pool  wallet  auto  ends (UTC)           refused  reclaimed first
    1     Mon 16 March      90     1      10   22 March 23:00          1          -
    2     Mon 23 March      81     1      10   29 March 22:00 (167 h)  1          1
    3     Mon 30 March      77     2       5   5 April 22:00           0          1
    4     Mon 6 April       69     0      10   12 April 22:00          1          2
    5     Mon 13 April      64     2       5   19 April 22:00          0          0

At the end: 34 credits used, 4 reclaimed, 100 = 64 in the pool + 2 in the wallet + 34 used.
With the reclaim off, the same renders leave each week's remainder in the wallet, where the next
week's renders spend it before any bundle comes in. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from creditpool.config import Config
from creditpool.domain.amounts import credits
from creditpool.domain.errors import InsufficientCredits
from creditpool.domain.model import Period, TransferKind
from creditpool.domain.policies import SettingsChange
from creditpool.services import audit, members, reports, usage
from creditpool.services.views import MemberView
from creditpool.storage.unit_of_work import UnitOfWork
from creditpool.worker import run_once
from tests.support.clock import FakeClock
from tests.support.factories import add_members, make_org

PARIS = ZoneInfo("Europe/Paris")
RENDER_FARM = "api-key:render-farm"


def paris(month: int, day: int, hour: int = 0) -> datetime:
    """An instant of 2026 on Paris's clocks, in UTC."""
    return datetime(2026, month, day, hour, tzinfo=PARIS).astimezone(UTC)


def utc(month: int, day: int, hour: int) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


@dataclass(frozen=True)
class Week:
    """What the student does in one week, and the figures it leaves."""

    renders: tuple[str, ...]  # credits each render costs, in order
    pool: str
    wallet: str
    auto_this_week: str
    ends_at: datetime
    refused: int


def weekly_budget(reclaim: bool) -> SettingsChange:
    return SettingsChange(
        auto_enabled=True,
        auto_bundle=credits("5"),
        auto_max_per_member=credits("10"),
        auto_period=Period.WEEK,
        period_set=True,
        auto_reclaim=reclaim,
        timezone="Europe/Paris",
    )


def run_week(
    uow: UnitOfWork, clock: FakeClock, org_id: str, student: str, number: int, week: Week
) -> MemberView:
    """The student renders through week `number` (1 to 5); returns the student after it."""
    monday = paris(3, 16) + timedelta(weeks=number - 1)
    if number == 4:
        # Nobody renders until Wednesday; the worker passes just after midnight on Monday.
        clock.current = paris(4, 6, 0) + timedelta(minutes=30)
        assert run_once(uow, Config()).periods_settled == 1
        clock.current = paris(4, 8, 10)
    else:
        # Monday 09:00 in Paris, whatever the offset: the first render of the week.
        clock.current = monday.astimezone(PARIS).replace(hour=9).astimezone(UTC)
    refusals: list[str] = []
    for cost in week.renders:
        clock.advance(minutes=20)
        try:
            usage.charge_usage(uow, org_id, student, credits(cost), actor=RENDER_FARM)
        except InsufficientCredits as refusal:
            refusals.append(refusal.detail)
    assert len(refusals) == week.refused, f"week {number}"
    assert all("cap of 10 per member this week" in detail for detail in refusals)
    return members.get_member(uow, org_id, student)


THREE_RENDERS_AND_ONE_TOO_MANY = ("3", "3", "3", "3")

WITH_RECLAIM = [
    # 3 -> a bundle (5 in, 2 left); 3 -> a bundle (10 in, 4 left); 3 -> 1 left; 3 refused.
    Week(THREE_RENDERS_AND_ONE_TOO_MANY, "90", "1", "10", utc(3, 22, 23), refused=1),
    # Monday's first render gives the 1 left back first: pool 91, then the same week again.
    Week(THREE_RENDERS_AND_ONE_TOO_MANY, "81", "1", "10", utc(3, 29, 22), refused=1),
    # 1 reclaimed (82); one render: a bundle in, 2 left.
    Week(("3",), "77", "2", "5", utc(4, 5, 22), refused=0),
    # The worker reclaims the 2 (79); a render of 10 takes two bundles; 1 more is refused.
    Week(("10", "1"), "69", "0", "10", utc(4, 12, 22), refused=1),
    # Nothing was left of week 4: nothing reclaimed; a render of 3 takes one bundle.
    Week(("3",), "64", "2", "5", utc(4, 19, 22), refused=0),
]

WITHOUT_RECLAIM = [
    Week(THREE_RENDERS_AND_ONE_TOO_MANY, "90", "1", "10", utc(3, 22, 23), refused=1),
    # The 1 left stays: 1 + a bundle - 3 = 3; 3 - 3 = 0; a bundle - 3 = 2; 3 refused (capped).
    Week(THREE_RENDERS_AND_ONE_TOO_MANY, "80", "2", "10", utc(3, 29, 22), refused=1),
    # 2 + a bundle - 3 = 4.
    Week(("3",), "75", "4", "5", utc(4, 5, 22), refused=0),
    # 4 + two bundles - 10 = 4; then 1 is paid from what is left: nothing refused.
    Week(("10", "1"), "65", "3", "10", utc(4, 12, 22), refused=0),
    # 3 - 3 = 0: no bundle needed this week.
    Week(("3",), "65", "0", "0", utc(4, 19, 22), refused=0),
]


@pytest.mark.parametrize(
    ("reclaim", "weeks"), [(True, WITH_RECLAIM), (False, WITHOUT_RECLAIM)], ids=["reclaim", "keep"]
)
def test_five_weeks_of_a_weekly_budget_across_the_clock_change(
    uow: UnitOfWork, clock: FakeClock, reclaim: bool, weeks: list[Week]
) -> None:
    clock.current = paris(3, 16, 8)  # Monday 16 March, 08:00 in Paris
    org = make_org(uow, name="Render class", purchase="100", settings=weekly_budget(reclaim))
    (student,) = add_members(uow, org.id, 1)
    assert student.period_ends_at == utc(3, 22, 23)  # the next Monday, 00:00 in Paris

    for number, week in enumerate(weeks, start=1):
        after = run_week(uow, clock, org.id, student.id, number, week)
        figures = (
            reports.get_balance(uow, org.id).available,
            after.credits_available,
            after.auto_allocated_this_period,
            after.period_ends_at,
        )
        expected = (
            credits(week.pool),
            credits(week.wallet),
            credits(week.auto_this_week),
            week.ends_at,
        )
        assert figures == expected, f"week {number}"
        # Every week ends on a Monday at midnight in Paris.
        assert after.period_ends_at is not None
        local_end = after.period_ends_at.astimezone(PARIS)
        assert (local_end.weekday(), local_end.hour, local_end.minute) == (0, 0, 0)

    # Week 2 held the change to summer time: it lasted an hour less.
    assert weeks[1].ends_at - weeks[0].ends_at == timedelta(hours=167)
    reclaimed = [
        t.amount for t in reports.list_transfers(uow, org.id, kind=TransferKind.RECLAIM, limit=50)
    ]
    used = reports.get_balance(uow, org.id).used
    if reclaim:
        assert sorted(reclaimed) == [credits("1"), credits("1"), credits("2")]
        assert used == credits("34")
    else:
        assert reclaimed == []
        assert used == credits("35")  # the 1 of week 4 was paid from what was left
    # Every credit bought is in the pool, the wallet, or used.
    final = weeks[-1]
    assert credits(final.pool) + credits(final.wallet) + used == credits("100")
    assert audit.audit(uow).breaches == []
