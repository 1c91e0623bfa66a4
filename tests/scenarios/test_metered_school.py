"""Seat metering: a music school whose pool burns continuously for the seats it pays for.

The school buys 100 credits. A licensed seat burns 1 credit a year, an unlicensed seat 0.1, an
external (self-paying) seat nothing. The school has 10 licensed seats (the teacher who owns the
org and 9 pupils), 5 unlicensed and 2 external, so it burns

    r = 10 x 1 + 5 x 0.1 + 2 x 0 = 10.5 credits a year = 10,500,000 micro-credits a year.

Over s seconds the burn is r x s / 31,536,000 (a year of 365 days), in micro-credits rounded
down, posted whenever the rate or the pool changes. Every expected figure is worked out below
with Fraction from these rules, never read back from the code. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from fractions import Fraction

from creditpool.domain.amounts import credits
from creditpool.domain.model import MemberStatus, Seat, TransferKind
from creditpool.domain.policies import SettingsChange
from creditpool.services import audit, groups, members, orgs, reports, usage
from creditpool.services import credits as credit_service
from creditpool.services.targets import Target
from creditpool.services.views import MemberView, OrgView
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.clock import FakeClock
from tests.support.factories import OPERATOR, add_members, make_org

YEAR_SECONDS = 365 * 24 * 3600  # 31,536,000
DAY_SECONDS = 24 * 3600
PURCHASED = credits("100")
LICENSED = credits("1")
UNLICENSED = credits("0.1")
RATES = SettingsChange(rate_licensed=LICENSED, rate_unlicensed=UNLICENSED, rate_external=0)
# 10 x 1 + 5 x 0.1 + 2 x 0 credits a year.
SCHOOL_RATE = 10 * LICENSED + 5 * UNLICENSED
APP = "api-key:ear-training"


def burnt(rate: int, days: int) -> int:
    """Micro-credits burnt in `days` at `rate` a year: rate x s / year, rounded down."""
    return math.floor(Fraction(rate * days * DAY_SECONDS, YEAR_SECONDS))


def per_day(rate: int) -> int:
    """The rate / 365 to 6 places (whole micro-credits), halves rounded up."""
    return math.floor(Fraction(rate, 365) + Fraction(1, 2))


def seconds_to_burn(balance: int, rate: int) -> int:
    """Whole seconds, rounded up, until `balance` is burnt at `rate`: balance x year / rate."""
    return math.ceil(Fraction(balance * YEAR_SECONDS, rate))


@dataclass
class School:
    org: OrgView
    pupils: list[MemberView]  # 9 licensed
    listeners: list[MemberView]  # 5 unlicensed
    externals: list[MemberView]  # 2 external


def open_school(uow: UnitOfWork) -> School:
    """100 credits, the owner's licensed seat, 9 licensed, 5 unlicensed and 2 external pupils."""
    org = make_org(uow, name="Music school", purchase="100", settings=RATES)
    return School(
        org=org,
        pupils=add_members(uow, org.id, 9, seat=Seat.LICENSED),
        listeners=add_members(uow, org.id, 5, seat=Seat.UNLICENSED),
        externals=add_members(uow, org.id, 2, seat=Seat.EXTERNAL),
    )


def test_ninety_days_of_seats_then_thirty_paused(uow: UnitOfWork, clock: FakeClock) -> None:
    school = open_school(uow)
    org_id = school.org.id
    assert reports.get_balance(uow, org_id).burn_rate_per_year == SCHOOL_RATE == credits("10.5")

    # 90 days at 10.5 a year: 10,500,000 x 90 / 365 = 2,589,041.09... -> 2,589,041 micro-credits.
    ninety_days = burnt(SCHOOL_RATE, 90)
    assert ninety_days == 2_589_041
    expected = PURCHASED - ninety_days
    assert expected == credits("97.410959")
    # Asked on day 0, the balance on day 90 already says so ("what will it be on date D").
    day_90 = clock.current + timedelta(days=90)
    assert reports.get_balance(uow, org_id, at=day_90).available == expected

    clock.advance(days=90)
    orgs.set_paused(uow, org_id, paused=True, actor=OPERATOR)
    clock.advance(days=30)

    # Paused for 30 days: not a micro-credit more.
    balance = reports.get_balance(uow, org_id)
    assert balance.available == expected
    assert balance.metered == ninety_days
    assert (balance.burn_rate_per_day, balance.depletes_at) == (0, None)
    # The 90 days were posted as one metering transfer when the pause began.
    metering = reports.list_transfers(uow, org_id, kind=TransferKind.METERING)
    assert [t.amount for t in metering] == [ninety_days]

    # Resumed on day 120: 10.5 / 365 = 0.028767123... -> 0.028767 a day.
    orgs.set_paused(uow, org_id, paused=False, actor=OPERATOR)
    balance = reports.get_balance(uow, org_id)
    assert balance.burn_rate_per_day == per_day(SCHOOL_RATE) == credits("0.028767")
    # 97.410959 credits last 97,410,959 x 31,536,000 / 10,500,000 s = 292,566,857.43... s.
    runs_for = seconds_to_burn(expected, SCHOOL_RATE)
    assert runs_for == 292_566_858
    assert balance.depletes_at == clock.current + timedelta(seconds=runs_for)
    # One second before that instant something is left; at it, nothing.
    before = balance.depletes_at - timedelta(seconds=1)
    assert reports.get_balance(uow, org_id, at=before).available > 0
    assert reports.get_balance(uow, org_id, at=balance.depletes_at).available == 0
    report = audit.audit(uow, org_id)
    assert report.clean, report.breaches


def test_a_new_school_runs_out_in_nine_and_a_half_years(uow: UnitOfWork) -> None:
    school = open_school(uow)

    balance = reports.get_balance(uow, school.org.id)

    # 100 credits at 10.5 a year: 100 x 31,536,000 / 10.5 = 300,342,857.14... s, rounded up.
    assert balance.depletes_at == school.org.created_at + timedelta(seconds=300_342_858)
    assert seconds_to_burn(PURCHASED, SCHOOL_RATE) == 300_342_858


def test_licensing_and_unlicensing_move_the_rate_at_once(uow: UnitOfWork, clock: FakeClock) -> None:
    school = open_school(uow)
    org_id = school.org.id
    pupil, external = school.pupils[0], school.externals[0]
    # Day 0: the pupil gets 2 credits and uses 0.5 of them; the pool holds 100 - 2 = 98.
    credit_service.allocate_credits(
        uow, org_id, Target.members([pupil.id]), credits("2"), actor=OPERATOR
    )
    usage.charge_usage(uow, org_id, pupil.id, credits("0.5"), metrics={"lessons": 1}, actor=APP)

    # Day 10: the pupil loses its licence. 10 days at 10.5 are posted first:
    # 10,500,000 x 10 / 365 = 287,671.2... -> 287,671.
    clock.advance(days=10)
    unlicensed = members.change_member(uow, org_id, pupil.id, seat=Seat.UNLICENSED, actor=OPERATOR)
    # From this instant: 9 x 1 + 6 x 0.1 = 9.6 a year, 9.6 / 365 = 0.026301369... a day.
    rate_after_unlicensing = 9 * LICENSED + 6 * UNLICENSED
    balance = reports.get_balance(uow, org_id)
    assert balance.burn_rate_per_year == rate_after_unlicensing == credits("9.6")
    assert balance.burn_rate_per_day == per_day(rate_after_unlicensing) == credits("0.026301")
    # Unlicensing keeps the member and its data; only the school stops paying its seat.
    assert unlicensed.status is MemberStatus.ACTIVE
    assert (unlicensed.credits_available, unlicensed.credits_used) == (
        credits("1.5"),
        credits("0.5"),
    )
    assert unlicensed.usage == {"lessons": 1}
    assert (unlicensed.access, unlicensed.access_reason) == (False, "unlicensed")

    # Day 20: an external pupil gets a licence. 10 days at 9.6: 263,013.6... -> 263,013.
    clock.advance(days=10)
    members.change_member(uow, org_id, external.id, seat=Seat.LICENSED, actor=OPERATOR)
    # 10 x 1 + 6 x 0.1 + 1 x 0 = 10.6 a year.
    balance = reports.get_balance(uow, org_id)
    assert balance.burn_rate_per_year == credits("10.6")

    first, second = burnt(SCHOOL_RATE, 10), burnt(rate_after_unlicensing, 10)
    assert (first, second) == (287_671, 263_013)
    metering = reports.list_transfers(uow, org_id, kind=TransferKind.METERING)
    assert sorted(t.amount for t in metering) == sorted([first, second])
    # Pool: 98 - 0.287671 - 0.263013 = 97.449316. Had the rate waited, 20 days at 10.5 would
    # have burnt 575,342 instead of 550,684.
    assert balance.available == credits("98") - first - second == credits("97.449316")
    report = audit.audit(uow, org_id)
    assert report.clean, report.breaches


def test_groups_change_nothing(uow: UnitOfWork, clock: FakeClock) -> None:
    school = open_school(uow)
    org_id = school.org.id

    # A class of 5 licensed and 3 unlicensed pupils: the burn stays 10.5 a year.
    choir = groups.create_group(uow, org_id, "Choir", actor=OPERATOR)
    in_choir = [m.id for m in school.pupils[:5] + school.listeners[:3]]
    assert groups.set_group_members(uow, org_id, choir.id, in_choir).member_count == 8
    assert reports.get_balance(uow, org_id).burn_rate_per_year == SCHOOL_RATE
    clock.advance(days=45)
    groups.delete_group(uow, org_id, choir.id)
    clock.advance(days=45)

    # After 90 days the pool is where 90 days at 10.5 put it, group or no group.
    assert reports.get_balance(uow, org_id).available == credits("97.410959")
    assert reports.get_balance(uow, org_id).burn_rate_per_year == SCHOOL_RATE


def test_a_removed_member_who_comes_back_finds_its_history(
    uow: UnitOfWork, clock: FakeClock
) -> None:
    school = open_school(uow)
    org_id = school.org.id
    pupil = school.pupils[0]
    choir = groups.create_group(uow, org_id, "Choir", actor=OPERATOR)
    groups.set_group_members(uow, org_id, choir.id, [pupil.id])
    # Day 0: 2 credits allotted, 0.5 used for one lesson; pool 100 - 2 = 98.
    credit_service.allocate_credits(
        uow, org_id, Target.members([pupil.id]), credits("2"), actor=OPERATOR
    )
    usage.charge_usage(uow, org_id, pupil.id, credits("0.5"), metrics={"lessons": 1}, actor=APP)

    # Day 30: removed. 30 days at 10.5 are posted (863,013.6... -> 863,013), the 1.5 left in the
    # wallet go back to the pool, and the burn drops to 9.5 a year.
    clock.advance(days=30)
    gone = members.remove_member(uow, org_id, pupil.id, actor=OPERATOR)
    assert gone.status is MemberStatus.REMOVED
    assert gone.credits_balance == 0
    assert reports.get_balance(uow, org_id).burn_rate_per_year == credits("9.5")

    # Day 60: the pupil joins again. 30 days at 9.5 are posted (780,821.9... -> 780,821).
    clock.advance(days=30)
    back = members.add_member(uow, org_id, user_id=pupil.user_id, actor=OPERATOR)

    # Same membership, active and licensed again, with its allotments, usage and class.
    assert back.id == pupil.id
    assert (back.status, back.seat) == (MemberStatus.ACTIVE, Seat.LICENSED)
    assert back.credits_allocated == credits("2")
    assert back.credits_used == credits("0.5")
    assert back.usage == {"lessons": 1}
    assert back.groups == [choir.id]
    assert back.credits_available == 0  # its 1.5 went back to the pool on removal
    history = reports.list_transfers(uow, org_id, member_id=pupil.id)
    assert sorted(t.kind for t in history) == ["allocation", "revocation", "usage"]
    assert reports.check_access(uow, org_id, pupil.id).access is True

    # The burn is back to 10.5, and the pool is 98 - 0.863013 + 1.5 - 0.780821 = 97.856166.
    balance = reports.get_balance(uow, org_id)
    assert balance.burn_rate_per_year == SCHOOL_RATE
    first, second = burnt(SCHOOL_RATE, 30), burnt(SCHOOL_RATE - LICENSED, 30)
    assert (first, second) == (863_013, 780_821)
    assert balance.available == credits("98") - first + credits("1.5") - second
    assert balance.available == credits("97.856166")
    report = audit.audit(uow, org_id)
    assert report.clean, report.breaches
