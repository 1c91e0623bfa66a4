"""Seat metering through the services, on each engine.

Seat metering, exactly: each active seat adds its rate (credits a year) to the org's
burn; over `s` seconds at `r` credits a year the pool loses `r * s / 31,536,000`, in
micro-credits, rounded down; it never goes below zero and time spent dry is never charged later.
The expected figures are worked out here with `fractions.Fraction`.

Every org here burns 1 credit a year per licensed seat and 0.1 per unlicensed seat, nothing for
external seats; its owner holds a licensed seat from the start.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from creditpool.domain.amounts import credits
from creditpool.domain.errors import InsufficientCredits, InvalidInput
from creditpool.domain.model import Seat, TransferKind
from creditpool.domain.policies import SettingsChange
from creditpool.services import audit, groups, members, orgs, reports
from creditpool.services.credits import allocate_credits, record_purchase
from creditpool.services.targets import Target
from creditpool.services.usage import charge_usage
from creditpool.services.views import MemberView
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.clock import FakeClock
from tests.support.factories import OPERATOR, add_members, make_group, make_org

SECONDS_PER_YEAR = 365 * 24 * 60 * 60  # 31,536,000
DAY = 24 * 60 * 60
LICENSED = credits("1")  # micro-credits a year
UNLICENSED = credits("0.1")
RATES = SettingsChange(rate_licensed=LICENSED, rate_unlicensed=UNLICENSED)


def burnt(rate: int, seconds: int) -> int:
    """Micro-credits burnt at `rate` micro-credits a year over `seconds`, rounded down."""
    return math.floor(Fraction(rate * seconds, SECONDS_PER_YEAR))


def available(uow: UnitOfWork, org_id: str) -> int:
    return reports.get_balance(uow, org_id).available


def metering_transfers(uow: UnitOfWork, org_id: str) -> list[tuple[int, object]]:
    return [
        (t.amount, t.created_at)
        for t in reports.list_transfers(uow, org_id, kind=TransferKind.METERING)
    ]


def assert_books_clean(uow: UnitOfWork, org_id: str) -> None:
    report = audit.audit(uow, org_id)
    assert report.clean, report.breaches


# The balance at an instant


def test_the_balance_ahead_is_the_pool_less_the_burn_until_then(uow: UnitOfWork, clock: FakeClock):
    org = make_org(uow, purchase="10", settings=RATES)
    add_members(uow, org.id, 2)
    add_members(uow, org.id, 1, seat=Seat.UNLICENSED)
    rate = 3 * LICENSED + UNLICENSED  # the owner and two students licensed, one not
    later = clock.now() + timedelta(days=100, seconds=7)

    ahead = reports.get_balance(uow, org.id, at=later)

    burn = burnt(rate, 100 * DAY + 7)
    assert (ahead.at, ahead.burn_rate_per_year) == (later, rate)
    assert ahead.available == credits("10") - burn
    assert ahead.metered == burn
    assert ahead.purchased == credits("10")
    # Reading the future writes nothing, and the present is untouched.
    assert metering_transfers(uow, org.id) == []
    assert available(uow, org.id) == credits("10")
    # When that instant comes, the balance is what was foretold.
    clock.advance(days=100, seconds=7)
    assert available(uow, org.id) == credits("10") - burn


def test_a_balance_cannot_be_read_in_the_past(uow: UnitOfWork, clock: FakeClock):
    org = make_org(uow, purchase="10", settings=RATES)

    with pytest.raises(InvalidInput):
        reports.get_balance(uow, org.id, at=clock.now() - timedelta(seconds=1))


@pytest.mark.parametrize(
    ("licensed", "unlicensed"), [(0, 0), (2, 1), (9, 0)], ids=["owner only", "3.1 a year", "10"]
)
def test_burn_rate_per_day_is_the_yearly_rate_over_365(
    uow: UnitOfWork, licensed: int, unlicensed: int
):
    org = make_org(uow, purchase="10", settings=RATES)
    add_members(uow, org.id, licensed)
    add_members(uow, org.id, unlicensed, seat=Seat.UNLICENSED)
    rate = (1 + licensed) * LICENSED + unlicensed * UNLICENSED

    balance = reports.get_balance(uow, org.id)

    # 1,000,000 / 365 = 2739.73 -> 2740; 3,100,000 / 365 = 8493.15 -> 8493; 10 / 365 -> 27397.26
    assert balance.burn_rate_per_day == round(Fraction(rate, 365))
    assert balance.burn_rate_per_year == rate


def test_depletes_at_is_the_second_the_pool_reaches_zero(uow: UnitOfWork, clock: FakeClock):
    org = make_org(uow, purchase="1", settings=RATES)
    add_members(uow, org.id, 2)
    add_members(uow, org.id, 1, seat=Seat.UNLICENSED)
    rate = 3 * LICENSED + UNLICENSED
    start = clock.now()

    depletes_at = reports.get_balance(uow, org.id).depletes_at

    # The least s with rate * s / year >= 1 credit: 31,536,000 / 3.1 = 10,172,903.2 -> ...904.
    seconds = math.ceil(Fraction(credits("1") * SECONDS_PER_YEAR, rate))
    assert depletes_at == start + timedelta(seconds=seconds)
    assert reports.get_balance(uow, org.id, at=depletes_at).available == 0
    one_before = reports.get_balance(uow, org.id, at=depletes_at - timedelta(seconds=1))
    assert one_before.available == credits("1") - burnt(rate, seconds - 1) > 0
    # Time passing at the same rate does not move the date.
    clock.advance(days=30)
    assert reports.get_balance(uow, org.id).depletes_at == depletes_at


def test_nothing_burning_means_no_depletion_date(uow: UnitOfWork):
    org = make_org(uow, purchase="10")  # no seat rates: nothing is metered

    balance = reports.get_balance(uow, org.id)

    assert (balance.burn_rate_per_year, balance.burn_rate_per_day) == (0, 0)
    assert balance.depletes_at is None


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    licensed=st.integers(0, 4),
    unlicensed=st.integers(0, 4),
    purchase_micros=st.integers(1, 5 * 10**6),
    seconds=st.integers(0, 3 * SECONDS_PER_YEAR),
)
def test_the_balance_ahead_matches_the_formula(
    uow: UnitOfWork,
    clock: FakeClock,
    licensed: int,
    unlicensed: int,
    purchase_micros: int,
    seconds: int,
):
    org = make_org(uow, settings=RATES)
    record_purchase(uow, org.id, purchase_micros, actor=OPERATOR)
    add_members(uow, org.id, licensed)
    add_members(uow, org.id, unlicensed, seat=Seat.UNLICENSED)
    rate = (1 + licensed) * LICENSED + unlicensed * UNLICENSED

    ahead = reports.get_balance(uow, org.id, at=clock.now() + timedelta(seconds=seconds))

    assert ahead.available == max(0, purchase_micros - burnt(rate, seconds))


# The rate moves the moment a seat changes


def _add_licensed(uow: UnitOfWork, org_id: str, _student: MemberView) -> None:
    add_members(uow, org_id, 1)


def _remove(uow: UnitOfWork, org_id: str, student: MemberView) -> None:
    members.remove_member(uow, org_id, student.id, actor=OPERATOR)


def _seat(seat: Seat) -> Callable[[UnitOfWork, str, MemberView], None]:
    def change(uow: UnitOfWork, org_id: str, student: MemberView) -> None:
        members.change_member(uow, org_id, student.id, seat=seat, actor=OPERATOR)

    return change


@pytest.mark.parametrize(
    ("student_seat", "change", "rate_before", "rate_after"),
    [
        (Seat.LICENSED, _add_licensed, 2 * LICENSED, 3 * LICENSED),
        (Seat.LICENSED, _remove, 2 * LICENSED, LICENSED),
        (Seat.UNLICENSED, _seat(Seat.LICENSED), LICENSED + UNLICENSED, 2 * LICENSED),
        (Seat.LICENSED, _seat(Seat.UNLICENSED), 2 * LICENSED, LICENSED + UNLICENSED),
        (Seat.LICENSED, _seat(Seat.EXTERNAL), 2 * LICENSED, LICENSED),
    ],
    ids=["member added", "member removed", "licensed", "unlicensed", "made external"],
)
def test_a_seat_change_moves_the_rate_at_once(
    uow: UnitOfWork,
    clock: FakeClock,
    student_seat: Seat,
    change: Callable[[UnitOfWork, str, MemberView], None],
    rate_before: int,
    rate_after: int,
):
    org = make_org(uow, purchase="100", settings=RATES)
    (student,) = add_members(uow, org.id, 1, seat=student_seat)
    clock.advance(days=10)
    changed_at = clock.now()

    change(uow, org.id, student)
    clock.advance(days=20, seconds=13)

    first, second = burnt(rate_before, 10 * DAY), burnt(rate_after, 20 * DAY + 13)
    # The burn at the old rate is posted as one metering transfer at the change.
    assert metering_transfers(uow, org.id) == [(first, changed_at)]
    balance = reports.get_balance(uow, org.id)
    assert balance.burn_rate_per_year == rate_after
    assert balance.available == credits("100") - first - second
    assert balance.metered == first + second
    assert_books_clean(uow, org.id)


def test_groups_change_nothing(uow: UnitOfWork, clock: FakeClock):
    org = make_org(uow, purchase="100", settings=RATES)
    ada, bob = add_members(uow, org.id, 2)
    clock.advance(days=10)

    group = make_group(uow, org.id, [ada.id, bob.id])
    groups.set_group_members(uow, org.id, group.id, [ada.id])
    groups.delete_group(uow, org.id, group.id)
    clock.advance(days=20)

    rate = 3 * LICENSED
    assert reports.get_balance(uow, org.id).burn_rate_per_year == rate
    assert available(uow, org.id) == credits("100") - burnt(rate, 30 * DAY)
    assert metering_transfers(uow, org.id) == []


def test_external_seats_burn_nothing(uow: UnitOfWork, clock: FakeClock):
    org = make_org(uow, purchase="100", settings=RATES)
    add_members(uow, org.id, 3, seat=Seat.EXTERNAL)

    clock.advance(days=30)

    balance = reports.get_balance(uow, org.id)
    assert balance.burn_rate_per_year == LICENSED  # the owner's seat alone
    assert balance.available == credits("100") - burnt(LICENSED, 30 * DAY)


def test_new_seat_rates_apply_from_the_moment_they_are_set(uow: UnitOfWork, clock: FakeClock):
    org = make_org(uow, purchase="100")  # no rates yet: nothing burns
    add_members(uow, org.id, 1)
    clock.advance(days=10)

    orgs.update_settings(uow, org.id, RATES, actor=OPERATOR)
    clock.advance(days=5)

    assert available(uow, org.id) == credits("100") - burnt(2 * LICENSED, 5 * DAY)


# Pausing, and a pool that runs dry


def test_a_paused_org_burns_nothing_and_resuming_restarts_the_burn(
    uow: UnitOfWork, clock: FakeClock
):
    org = make_org(uow, purchase="10", settings=RATES)
    add_members(uow, org.id, 1)
    rate = 2 * LICENSED
    clock.advance(days=10)
    before_pause = burnt(rate, 10 * DAY)

    paused = orgs.set_paused(uow, org.id, paused=True, actor=OPERATOR)
    clock.advance(days=30)  # a paused month

    assert paused.paused is True
    balance = reports.get_balance(uow, org.id)
    assert balance.available == credits("10") - before_pause
    assert (balance.burn_rate_per_year, balance.depletes_at) == (0, None)
    assert len(metering_transfers(uow, org.id)) == 1  # posted at the pause

    orgs.set_paused(uow, org.id, paused=False, actor=OPERATOR)
    clock.advance(days=10)

    balance = reports.get_balance(uow, org.id)
    assert balance.burn_rate_per_year == rate
    assert balance.available == credits("10") - before_pause - burnt(rate, 10 * DAY)
    assert_books_clean(uow, org.id)


def test_a_dry_pool_stops_at_zero_and_dry_time_is_never_charged(uow: UnitOfWork, clock: FakeClock):
    org = make_org(uow, purchase="0.01", settings=RATES)  # the owner alone: 1 credit a year
    start = clock.now()
    # 0.01 credit lasts 0.01 of a year: 315,360 seconds (3.65 days).
    assert reports.get_balance(uow, org.id).depletes_at == start + timedelta(seconds=315_360)
    clock.advance(days=30)

    dry = reports.get_balance(uow, org.id)
    assert (dry.available, dry.metered) == (0, credits("0.01"))

    record_purchase(uow, org.id, credits("5"), actor=OPERATOR)

    # The 26 dry days are not taken from the new credits: all 5 are there.
    after = reports.get_balance(uow, org.id)
    assert (after.available, after.metered) == (credits("5"), credits("0.01"))
    clock.advance(days=1)
    assert available(uow, org.id) == credits("5") - burnt(LICENSED, DAY)
    assert_books_clean(uow, org.id)


# Access


@pytest.mark.parametrize(
    ("seat", "removed", "paused", "funded", "reason"),
    [
        # Each row also meets every condition after its own, to show the order of the reasons.
        (Seat.EXTERNAL, True, True, False, "removed"),
        (Seat.EXTERNAL, False, True, False, "external"),
        (Seat.UNLICENSED, False, True, False, "unlicensed"),
        (Seat.LICENSED, False, True, False, "paused"),
        (Seat.LICENSED, False, False, False, "no_credits"),
        (Seat.LICENSED, False, False, True, "ok"),
    ],
)
def test_access_gives_the_first_reason_that_holds(
    uow: UnitOfWork, seat: Seat, removed: bool, paused: bool, funded: bool, reason: str
):
    org = make_org(uow, purchase="10" if funded else None, settings=RATES)
    (student,) = add_members(uow, org.id, 1, seat=seat)
    if removed:
        members.remove_member(uow, org.id, student.id, actor=OPERATOR)
    if paused:
        orgs.set_paused(uow, org.id, paused=True, actor=OPERATOR)

    access = reports.check_access(uow, org.id, student.id)

    assert (access.access, access.reason) == (reason == "ok", reason)
    shown = members.get_member(uow, org.id, student.id)
    assert (shown.access, shown.access_reason) == (reason == "ok", reason)


def test_access_ends_when_the_pool_runs_dry_over_time(uow: UnitOfWork, clock: FakeClock):
    org = make_org(uow, purchase="0.01", settings=RATES)  # dry after 315,360 s
    (student,) = add_members(uow, org.id, 1)  # two licensed seats: dry after 157,680 s

    clock.advance(seconds=157_679)
    assert reports.check_access(uow, org.id, student.id).reason == "ok"
    clock.advance(seconds=1)
    assert reports.check_access(uow, org.id, student.id).reason == "no_credits"


def test_an_org_that_does_not_meter_licensed_seats_grants_access_on_an_empty_pool(
    uow: UnitOfWork,
):
    org = make_org(uow)  # no purchase, no seat rates
    (student,) = add_members(uow, org.id, 1)

    access = reports.check_access(uow, org.id, student.id)

    assert (access.access, access.reason) == (True, "ok")


# Metering meets allotment


def test_allotting_can_use_only_what_the_burn_has_left(uow: UnitOfWork, clock: FakeClock):
    org = make_org(uow, purchase="10", settings=RATES)
    (student,) = add_members(uow, org.id, 1)
    clock.advance(days=100)
    left = credits("10") - burnt(2 * LICENSED, 100 * DAY)  # 10 - 0.547945

    with pytest.raises(InsufficientCredits):
        allocate_credits(uow, org.id, Target.members([student.id]), left + 1, actor=OPERATOR)
    assert metering_transfers(uow, org.id) == []  # the refused batch posted nothing

    result = allocate_credits(uow, org.id, Target.members([student.id]), left, actor=OPERATOR)

    assert available(uow, org.id) == 0
    [metered] = reports.list_transfers(uow, org.id, kind=TransferKind.METERING)
    assert (metered.amount, metered.batch_id) == (credits("10") - left, result.batch_id)
    assert_books_clean(uow, org.id)


def test_an_automatic_top_up_needs_the_bundle_after_the_burn(uow: UnitOfWork, clock: FakeClock):
    auto = SettingsChange(
        rate_licensed=LICENSED,
        auto_enabled=True,
        auto_bundle=credits("5"),
        auto_max_per_member=credits("20"),
    )
    org = make_org(uow, purchase="5.5", settings=auto)
    (student,) = add_members(uow, org.id, 1)
    clock.advance(days=100)
    # Two licensed seats for 100 days burn 0.547945: 4.952055 is left, short of a bundle of 5.
    assert available(uow, org.id) == credits("5.5") - burnt(2 * LICENSED, 100 * DAY)

    with pytest.raises(InsufficientCredits):
        charge_usage(uow, org.id, student.id, credits("1"), actor="usage-key:test")

    assert members.get_member(uow, org.id, student.id).auto_allocated == 0
    assert metering_transfers(uow, org.id) == []


# Posting the burn only when it must be posted


def test_writes_that_move_neither_the_pool_nor_the_rate_post_no_burn(
    uow: UnitOfWork, clock: FakeClock
):
    org = make_org(uow, purchase="10", settings=RATES)
    empty = make_group(uow, org.id, [])
    rate = LICENSED  # the owner's licensed seat, all along
    start = clock.now()

    # Each of these lands at an odd second, where a posting would round down once more.
    clock.advance(days=3, seconds=1)
    add_members(uow, org.id, 1, seat=Seat.EXTERNAL)  # an external seat burns nothing
    clock.advance(days=5, seconds=3)
    allocate_credits(uow, org.id, Target.group(empty.id), credits("1"), actor=OPERATOR)
    clock.advance(days=7, seconds=5)
    orgs.update_settings(uow, org.id, SettingsChange(returnable=False), actor=OPERATOR)
    clock.advance(days=11, seconds=7)
    orgs.update_settings(uow, org.id, SettingsChange(rate_external=0), actor=OPERATOR)

    assert metering_transfers(uow, org.id) == []
    elapsed = int((clock.now() - start).total_seconds())
    # One interval, rounded once: exactly the metering formula (domain/metering.py).
    assert available(uow, org.id) == credits("10") - burnt(rate, elapsed)
    assert_books_clean(uow, org.id)


def test_the_pool_history_shows_when_each_burn_began(uow: UnitOfWork, clock: FakeClock):
    org = make_org(uow, purchase="10", settings=RATES)  # the owner holds a licensed seat
    start = clock.now()
    [student] = add_members(uow, org.id, 1, seat=Seat.EXTERNAL)
    orgs.set_paused(uow, org.id, paused=True, actor=OPERATOR)
    clock.advance(days=100)
    orgs.set_paused(uow, org.id, paused=False, actor=OPERATOR)
    resumed = clock.now()
    clock.advance(days=73)  # a fifth of a year at 1 credit a year: 0.2 burnt
    allocate_credits(uow, org.id, Target.members([student.id]), credits("2"), actor=OPERATOR)

    history = reports.pool_history(uow, org.id)

    assert [(p.at, p.balance, p.burn_began) for p in history.points] == [
        (start, credits("10"), None),  # the purchase
        (clock.now(), credits("9.8"), resumed),  # the burn since the resume, posted first
        (clock.now(), credits("7.8"), None),  # the allotment
    ]
    assert history.burning_since == clock.now()
    orgs.set_paused(uow, org.id, paused=True, actor=OPERATOR)
    assert reports.pool_history(uow, org.id).burning_since is None


def test_the_pool_history_shows_when_the_burn_ran_the_pool_dry(uow: UnitOfWork, clock: FakeClock):
    org = make_org(uow, purchase="1", settings=RATES)  # the owner's seat: 1 credit a year
    start = clock.now()
    clock.advance(days=400)
    assert reports.pool_history(uow, org.id).dry_since == start + timedelta(days=365)

    record_purchase(uow, org.id, credits("5"), actor=OPERATOR)

    burn, purchase = reports.pool_history(uow, org.id).points[1:]
    assert (burn.balance, burn.burn_began, burn.burn_ended) == (
        0,
        start,
        start + timedelta(days=365),  # dry a year in: the 35 days after burnt nothing
    )
    assert (purchase.at, purchase.balance, purchase.burn_began) == (clock.now(), credits("5"), None)
