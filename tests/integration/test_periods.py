"""Budgets per period on both engines: the cap per period, the reclaim at a boundary, who
settles it (a write, the worker), idempotence, manual allotments, returnable orgs, and a
settings change. The clock starts on Thursday 1 January 2026, 00:00 UTC; a weekly period in
UTC ends on Monday 5 January 00:00."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from creditpool.config import Config
from creditpool.domain.amounts import credits
from creditpool.domain.errors import InsufficientCredits
from creditpool.domain.model import Period, TransferKind
from creditpool.domain.policies import SettingsChange
from creditpool.services import audit, holds, members, orgs, periods, reports, usage
from creditpool.services import credits as credit_service
from creditpool.services.targets import Target
from creditpool.services.views import MemberView, OrgView
from creditpool.storage.schema import Org
from creditpool.storage.unit_of_work import UnitOfWork
from creditpool.worker import run_once
from tests.support.clock import FakeClock
from tests.support.factories import OPERATOR, add_members, make_org

FARM = "api-key:farm"
MONDAY = datetime(2026, 1, 5, tzinfo=UTC)
NEXT_MONDAY = datetime(2026, 1, 12, tzinfo=UTC)


def weekly(*, reclaim: bool = True, returnable: bool = True) -> SettingsChange:
    """Bundles of 5, at most 10 a member a week (UTC)."""
    return SettingsChange(
        returnable=returnable,
        auto_enabled=True,
        auto_bundle=credits("5"),
        auto_max_per_member=credits("10"),
        auto_period=Period.WEEK,
        period_set=True,
        auto_reclaim=reclaim,
    )


def weekly_class(
    uow: UnitOfWork, *, reclaim: bool = True, returnable: bool = True
) -> tuple[OrgView, MemberView]:
    org = make_org(uow, purchase="100", settings=weekly(reclaim=reclaim, returnable=returnable))
    (student,) = add_members(uow, org.id, 1)
    return org, student


def charge(uow: UnitOfWork, org_id: str, member_id: str, amount: str) -> MemberView:
    return usage.charge_usage(uow, org_id, member_id, credits(amount), actor=FARM).member


def reclaims(uow: UnitOfWork, org_id: str) -> list[int]:
    return [t.amount for t in reports.list_transfers(uow, org_id, kind=TransferKind.RECLAIM)]


def to_next_week(clock: FakeClock) -> None:
    clock.current = MONDAY + timedelta(hours=1)


def test_the_cap_counts_per_period_and_a_charge_past_the_boundary_settles_it(
    uow: UnitOfWork, clock: FakeClock
) -> None:
    org, student = weekly_class(uow)
    assert student.period_ends_at == MONDAY
    assert student.auto_allocated_this_period == 0
    # 3 credits: one bundle of 5 comes in, 2 stay. Then 6 more: one bundle (the second of
    # the week) makes 7, leaving 1. A third bundle would pass the weekly cap of 10.
    first = charge(uow, org.id, student.id, "3")
    assert (first.credits_available, first.auto_allocated_this_period) == (
        credits("2"),
        credits("5"),
    )
    second = charge(uow, org.id, student.id, "6")
    assert (second.credits_available, second.auto_allocated_this_period) == (
        credits("1"),
        credits("10"),
    )
    with pytest.raises(InsufficientCredits, match="this week"):
        charge(uow, org.id, student.id, "2")
    assert reports.get_balance(uow, org.id).available == credits("90")

    # Monday: the first charge of the week settles the boundary before it charges. Of the 10
    # received automatically, 9 were used: the 1 left goes back to the pool. Then 2 credits
    # need a new bundle, within the new week's cap.
    to_next_week(clock)
    third = charge(uow, org.id, student.id, "2")
    assert reclaims(uow, org.id) == [credits("1")]
    assert (third.credits_available, third.auto_allocated_this_period) == (
        credits("3"),
        credits("5"),
    )
    assert third.period_ends_at == NEXT_MONDAY
    assert third.auto_allocated == credits("15")  # the running total of every week
    assert reports.get_balance(uow, org.id).available == credits("90") + credits("1") - credits("5")
    assert audit.audit(uow).breaches == []


def test_a_write_that_takes_the_org_lock_settles_first(uow: UnitOfWork, clock: FakeClock) -> None:
    org, student = weekly_class(uow)
    charge(uow, org.id, student.id, "1")  # 5 in, 4 left
    to_next_week(clock)
    # An allotment settles the boundary (4 reclaimed) before it allots 2 of its own.
    batch = credit_service.allocate_credits(
        uow, org.id, Target.members([student.id]), credits("2"), actor=OPERATOR
    )
    assert reclaims(uow, org.id) == [credits("4")]
    (after,) = batch.members
    assert (after.credits_available, after.auto_allocated_this_period) == (credits("2"), 0)
    assert after.period_ends_at == NEXT_MONDAY


def test_settling_twice_reclaims_once(uow: UnitOfWork, clock: FakeClock) -> None:
    org, student = weekly_class(uow)
    charge(uow, org.id, student.id, "1")
    to_next_week(clock)
    first = periods.settle_due(uow, org.id)
    second = periods.settle_due(uow, org.id)
    assert first == periods.Settled(credits("4"), 1)
    assert second is None
    assert reclaims(uow, org.id) == [credits("4")]
    assert members.get_member(uow, org.id, student.id).credits_available == 0
    assert reports.get_balance(uow, org.id).available == credits("99")


def test_several_boundaries_crossed_at_once_settle_once(uow: UnitOfWork, clock: FakeClock) -> None:
    org, student = weekly_class(uow)
    charge(uow, org.id, student.id, "1")
    clock.current = MONDAY + timedelta(days=20)  # three weeks on, a Sunday
    assert periods.settle_due(uow, org.id) == periods.Settled(credits("4"), 1)
    assert members.get_member(uow, org.id, student.id).period_ends_at == MONDAY + timedelta(days=21)
    assert reclaims(uow, org.id) == [credits("4")]


def test_the_worker_settles_every_org_past_its_boundary(uow: UnitOfWork, clock: FakeClock) -> None:
    first, one = weekly_class(uow)
    second, two = weekly_class(uow)
    untouched = make_org(uow, purchase="10")  # no period: nothing to settle
    charge(uow, first.id, one.id, "2")
    charge(uow, second.id, two.id, "4.5")
    assert run_once(uow, Config()).periods_settled == 0  # not Monday yet
    to_next_week(clock)
    assert run_once(uow, Config()).periods_settled == 2
    assert run_once(uow, Config()).periods_settled == 0
    assert reclaims(uow, first.id) == [credits("3")]
    assert reclaims(uow, second.id) == [credits("0.5")]
    assert reports.list_transfers(uow, untouched.id, kind=TransferKind.RECLAIM) == []


def test_manual_allotments_are_never_reclaimed(uow: UnitOfWork, clock: FakeClock) -> None:
    org, student = weekly_class(uow)
    (other,) = add_members(uow, org.id, 1)
    # Student: 3 allotted by hand, then 4 charged: a bundle of 5 tops it up to 8, 4 left.
    # Usage spends the automatic credits first: 1 of the 5 is left, and the 3 allotted by hand.
    credit_service.allocate_credits(
        uow, org.id, Target.members([student.id, other.id]), credits("3"), actor=OPERATOR
    )
    charge(uow, org.id, student.id, "4")
    # The other member spends only what was allotted by hand: no automatic credit to reclaim.
    charge(uow, org.id, other.id, "2")
    to_next_week(clock)
    assert periods.settle_due(uow, org.id) == periods.Settled(credits("1"), 1)
    assert members.get_member(uow, org.id, student.id).credits_available == credits("3")
    assert members.get_member(uow, org.id, other.id).credits_available == credits("1")
    assert audit.audit(uow).breaches == []


def test_held_credits_stay_and_removed_members_are_skipped(
    uow: UnitOfWork, clock: FakeClock
) -> None:
    org, student = weekly_class(uow)
    (leaver,) = add_members(uow, org.id, 1)
    charge(uow, org.id, student.id, "1")  # 4 of its 5 left
    holds.place_hold(uow, org.id, student.id, credits("3"), expires_in=604_800, actor=FARM)
    charge(uow, org.id, leaver.id, "1")
    members.remove_member(uow, org.id, leaver.id, actor=OPERATOR)  # its 4 went back then
    to_next_week(clock)
    # Only the 1 the hold does not cover can go back.
    assert periods.settle_due(uow, org.id) == periods.Settled(credits("1"), 1)
    after = members.get_member(uow, org.id, student.id)
    assert (after.credits_balance, after.credits_held) == (credits("3"), credits("3"))


@pytest.mark.parametrize(("reclaim", "returnable"), [(False, True), (True, False)])
def test_no_reclaim_when_it_is_off_or_the_org_forbids_returns(
    uow: UnitOfWork, clock: FakeClock, reclaim: bool, returnable: bool
) -> None:
    org, student = weekly_class(uow, reclaim=reclaim, returnable=returnable)
    charge(uow, org.id, student.id, "1")
    to_next_week(clock)
    assert periods.settle_due(uow, org.id) == periods.Settled()
    assert reclaims(uow, org.id) == []
    # The credits stay, and the new week's cap counts afresh: two more bundles may come in.
    after = members.get_member(uow, org.id, student.id)
    assert (after.credits_available, after.auto_allocated_this_period) == (credits("4"), 0)
    assert after.period_ends_at == NEXT_MONDAY
    assert charge(uow, org.id, student.id, "14").auto_allocated_this_period == credits("10")


def test_a_change_of_period_or_zone_counts_afresh_and_reclaims_nothing(
    uow: UnitOfWork, clock: FakeClock
) -> None:
    org, student = weekly_class(uow)
    charge(uow, org.id, student.id, "6")  # 10 in, 4 left: the week's cap is reached
    clock.advance(hours=1)
    orgs.update_settings(uow, org.id, SettingsChange(timezone="America/New_York"), actor=OPERATOR)
    after = members.get_member(uow, org.id, student.id)
    # The week of Thursday 1 January in New York ends on Monday 5 January at 05:00 UTC.
    assert after.period_ends_at == MONDAY + timedelta(hours=5)
    assert (after.credits_available, after.auto_allocated_this_period) == (credits("4"), 0)
    assert reclaims(uow, org.id) == []
    monthly = SettingsChange(auto_period=Period.MONTH, period_set=True)
    orgs.update_settings(uow, org.id, monthly, actor=OPERATOR)
    # It is still 31 December, 20:00 in New York: December ends there at 05:00 UTC.
    assert members.get_member(uow, org.id, student.id).period_ends_at == datetime(
        2026, 1, 1, 5, tzinfo=UTC
    )
    # Without a period the cap counts for ever again: what counts is every automatic credit.
    orgs.update_settings(
        uow, org.id, SettingsChange(auto_period=None, period_set=True), actor=OPERATOR
    )
    off = members.get_member(uow, org.id, student.id)
    assert (off.period_ends_at, off.auto_allocated_this_period) == (None, credits("10"))
    assert orgs.get_org(uow, org.id).settings.auto_allocation.period is None


def test_a_hold_let_go_after_the_boundary_was_still_held_at_it(
    uow: UnitOfWork, clock: FakeClock
) -> None:
    org, student = weekly_class(uow)
    charge(uow, org.id, student.id, "1")  # 4 of its 5 left
    hold = holds.place_hold(uow, org.id, student.id, credits("3"), expires_in=604_800, actor=FARM)
    to_next_week(clock)
    # Voiding settles the boundary first: at it, 3 of the 4 were held, so 1 goes back.
    holds.void_hold(uow, org.id, hold.id, actor=FARM)
    assert reclaims(uow, org.id) == [credits("1")]
    assert members.get_member(uow, org.id, student.id).credits_available == credits("3")


def test_a_member_brought_back_counts_afresh_and_keeps_its_manual_credits(
    uow: UnitOfWork, clock: FakeClock
) -> None:
    org, student = weekly_class(uow)
    charge(uow, org.id, student.id, "1")  # 5 came in automatically, 4 left
    members.remove_member(uow, org.id, student.id, actor=OPERATOR)  # the 4 go back
    back = members.restore_member(uow, org.id, student.id, actor=OPERATOR)
    assert (back.credits_available, back.auto_allocated_this_period) == (0, 0)
    credit_service.allocate_credits(
        uow, org.id, Target.members([student.id]), credits("3"), actor=OPERATOR
    )
    to_next_week(clock)
    # Nothing of the week's automatic credits is left in the wallet: the 3 allotted stay.
    assert periods.settle_due(uow, org.id) == periods.Settled()
    assert members.get_member(uow, org.id, student.id).credits_available == credits("3")


def test_a_stored_zone_this_host_lacks_settles_in_utc_rather_than_failing(
    uow: UnitOfWork, clock: FakeClock
) -> None:
    # A zone valid when it was set may be missing from a later host's zone database: the
    # boundary still settles (in UTC), so requests to the org do not all fail as they settle.
    org, student = weekly_class(uow)
    charge(uow, org.id, student.id, "1")
    with uow:
        uow.session.execute(update(Org).where(Org.id == org.id).values(timezone="Atlantis/Capital"))
    to_next_week(clock)

    settled = periods.settle_due(uow, org.id)

    assert settled == periods.Settled(credits("4"), 1)
    assert members.get_member(uow, org.id, student.id).period_ends_at == NEXT_MONDAY
