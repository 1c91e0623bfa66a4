"""Seat metering arithmetic: accrual, depletion, daily rate, burn rate.

Rates are micro-credits per year; a year is 365 days (31,536,000 s). Expected values are worked
out with `fractions.Fraction`, never copied from the code's output.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from creditpool.domain.amounts import MAX_MICROS, MICROS_PER_CREDIT
from creditpool.domain.metering import (
    MICROSECONDS_PER_YEAR,
    SECONDS_PER_YEAR,
    SeatCounts,
    SeatRates,
    accrual,
    burn_rate,
    ceil_to_second,
    daily_rate,
    depletion_instant,
    elapsed_microseconds,
)
from creditpool.domain.model import Seat

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
ONE_CREDIT = MICROS_PER_CREDIT
# A balance no test interval can burn through: the accrual is then uncapped.
UNLIMITED = 10**40

rates = st.integers(min_value=0, max_value=10**6 * ONE_CREDIT)  # up to a million credits a year
positive_rates = st.integers(min_value=1, max_value=10**6 * ONE_CREDIT)
balances = st.integers(min_value=0, max_value=MAX_MICROS)
# Offsets from EPOCH in microseconds, within ten years.
offsets = st.integers(min_value=0, max_value=10 * MICROSECONDS_PER_YEAR)
instants = offsets.map(lambda us: EPOCH + timedelta(microseconds=us))


def at(microseconds: int) -> datetime:
    """Return EPOCH plus a number of microseconds."""
    return EPOCH + timedelta(microseconds=microseconds)


def exact_burn(rate: int, start: datetime, end: datetime) -> Fraction:
    """Micro-credits burnt at `rate` a year from start to end, as an exact fraction."""
    delta = end - start
    elapsed = (delta.days * 86_400 + delta.seconds) * 10**6 + delta.microseconds
    return Fraction(rate * elapsed, 365 * 86_400 * 10**6)


def test_a_year_is_365_days() -> None:
    assert SECONDS_PER_YEAR == 365 * 24 * 60 * 60 == 31_536_000
    assert MICROSECONDS_PER_YEAR == 365 * 86_400 * 10**6


# Accrual: worked examples ----------------------------------------------------------------------


def test_one_credit_a_year_for_365_days_is_exactly_one_credit() -> None:
    burnt = accrual(
        rate=ONE_CREDIT, start=EPOCH, end=EPOCH + timedelta(days=365), balance=UNLIMITED
    )
    assert burnt == 1_000_000


def test_ten_licensed_seats_for_90_days() -> None:
    # 10 seats x 1 credit/year x 90/365 year = 900/365 credits, rounded down to a micro-credit.
    expected = math.floor(Fraction(10 * 90, 365) * MICROS_PER_CREDIT)
    assert expected == 2_465_753  # 2.465753424... credits
    rate = burn_rate(SeatRates(licensed=ONE_CREDIT), SeatCounts(licensed=10), paused=False)
    burnt = accrual(rate=rate, start=EPOCH, end=EPOCH + timedelta(days=90), balance=UNLIMITED)
    assert burnt == expected


def test_one_day_at_one_credit_a_year_is_a_365th_rounded_down() -> None:
    # 1,000,000 / 365 = 2739.726... micro-credits.
    burnt = accrual(rate=ONE_CREDIT, start=EPOCH, end=EPOCH + timedelta(days=1), balance=10**9)
    assert burnt == 2_739


def test_an_unlicensed_seat_for_a_year_is_a_tenth_of_a_credit() -> None:
    rate = burn_rate(
        SeatRates(licensed=ONE_CREDIT, unlicensed=ONE_CREDIT // 10),
        SeatCounts(unlicensed=1),
        paused=False,
    )
    burnt = accrual(rate=rate, start=EPOCH, end=EPOCH + timedelta(days=365), balance=UNLIMITED)
    assert burnt == 100_000


def test_accrual_stops_at_the_balance() -> None:
    # Two years at one credit a year against half a credit: the pool runs dry at 0.5.
    burnt = accrual(rate=ONE_CREDIT, start=EPOCH, end=EPOCH + timedelta(days=730), balance=500_000)
    assert burnt == 500_000


def test_accrual_of_an_empty_or_negative_balance_is_zero() -> None:
    end = EPOCH + timedelta(days=30)
    assert accrual(rate=ONE_CREDIT, start=EPOCH, end=end, balance=0) == 0
    assert accrual(rate=ONE_CREDIT, start=EPOCH, end=end, balance=-5) == 0


def test_accrual_backwards_in_time_is_zero() -> None:
    assert accrual(rate=ONE_CREDIT, start=EPOCH, end=EPOCH - timedelta(days=3), balance=10) == 0


def test_accrual_counts_time_across_time_zones() -> None:
    # The same instant written at UTC+02:00 burns the same as written in UTC.
    end_in_utc = EPOCH + timedelta(hours=2)
    end_at_plus_two = end_in_utc.astimezone(timezone(timedelta(hours=2)))
    assert end_at_plus_two.hour == 4
    daily = 365 * ONE_CREDIT  # one credit a day: 2 hours = 1/12 credit
    assert accrual(rate=daily, start=EPOCH, end=end_at_plus_two, balance=UNLIMITED) == (
        accrual(rate=daily, start=EPOCH, end=end_in_utc, balance=UNLIMITED)
    )
    assert accrual(rate=daily, start=EPOCH, end=end_in_utc, balance=UNLIMITED) == 83_333


# Accrual: properties ---------------------------------------------------------------------------


@settings(max_examples=100)
@given(start=instants, end=instants, balance=balances)
def test_zero_rate_accrues_nothing(start: datetime, end: datetime, balance: int) -> None:
    assert accrual(rate=0, start=start, end=end, balance=balance) == 0


@settings(max_examples=200)
@given(rate=rates, start=instants, end=instants, balance=balances)
def test_accrual_is_the_exact_burn_rounded_down_and_capped(
    rate: int, start: datetime, end: datetime, balance: int
) -> None:
    burnt = accrual(rate=rate, start=start, end=end, balance=balance)
    assert 0 <= burnt <= balance
    if end >= start:
        assert burnt == min(balance, math.floor(exact_burn(rate, start, end)))
    else:
        assert burnt == 0


@settings(max_examples=200)
@given(rate=rates, start=instants, first=offsets, second=offsets, balance=balances)
def test_accrual_is_monotone_in_time(
    rate: int, start: datetime, first: int, second: int, balance: int
) -> None:
    earlier, later = sorted((first, second))
    assert accrual(
        rate=rate, start=start, end=start + timedelta(microseconds=earlier), balance=balance
    ) <= accrual(rate=rate, start=start, end=start + timedelta(microseconds=later), balance=balance)


@settings(max_examples=100)
@given(low=rates, high=rates, start=instants, end=instants, balance=balances)
def test_accrual_is_monotone_in_rate(
    low: int, high: int, start: datetime, end: datetime, balance: int
) -> None:
    low, high = sorted((low, high))
    assert accrual(rate=low, start=start, end=end, balance=balance) <= accrual(
        rate=high, start=start, end=end, balance=balance
    )


@settings(max_examples=200)
@given(rate=rates, a=offsets, b=offsets, c=offsets)
def test_splitting_an_interval_loses_at_most_one_micro_credit(
    rate: int, a: int, b: int, c: int
) -> None:
    a, b, c = sorted((a, b, c))
    start, middle, end = at(a), at(b), at(c)
    whole = accrual(rate=rate, start=start, end=end, balance=UNLIMITED)
    parts = accrual(rate=rate, start=start, end=middle, balance=UNLIMITED) + accrual(
        rate=rate, start=middle, end=end, balance=UNLIMITED
    )
    # Posting in two steps never charges more, and loses at most one micro-credit of rounding.
    assert whole - 1 <= parts <= whole


@settings(max_examples=100)
@given(rate=positive_rates, a=offsets, b=offsets, balance=st.integers(1, 10**9))
def test_a_pool_that_runs_dry_is_never_charged_past_its_balance(
    rate: int, a: int, b: int, balance: int
) -> None:
    # Post the accrual to b, then keep burning what is left: the total never passes the balance.
    a, b = sorted((a, b))
    first = accrual(rate=rate, start=EPOCH, end=at(a), balance=balance)
    second = accrual(rate=rate, start=at(a), end=at(b), balance=balance - first)
    assert 0 <= first + second <= balance


# Elapsed time and rounding to seconds ----------------------------------------------------------


@settings(max_examples=100)
@given(a=offsets, b=offsets)
def test_elapsed_microseconds_is_exact_and_never_negative(a: int, b: int) -> None:
    assert elapsed_microseconds(at(a), at(b)) == max(0, b - a)


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        (EPOCH, EPOCH),
        (EPOCH + timedelta(microseconds=1), EPOCH + timedelta(seconds=1)),
        (EPOCH + timedelta(seconds=59, microseconds=999_999), EPOCH + timedelta(seconds=60)),
        (
            datetime(2026, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC),
            datetime(2027, 1, 1, tzinfo=UTC),
        ),
    ],
)
def test_ceil_to_second(instant: datetime, expected: datetime) -> None:
    assert ceil_to_second(instant) == expected


@settings(max_examples=100)
@given(instant=instants)
def test_ceil_to_second_is_the_least_whole_second_not_before(instant: datetime) -> None:
    rounded = ceil_to_second(instant)
    assert rounded.microsecond == 0
    assert rounded.tzinfo is not None
    assert instant <= rounded < instant + timedelta(seconds=1)


# Depletion -------------------------------------------------------------------------------------


@settings(max_examples=50)
@given(since=instants, balance=balances)
def test_a_pool_that_burns_nothing_never_runs_out(since: datetime, balance: int) -> None:
    assert depletion_instant(rate=0, since=since, balance=balance) is None


def test_one_credit_at_one_credit_a_year_runs_out_after_365_days() -> None:
    assert depletion_instant(rate=ONE_CREDIT, since=EPOCH, balance=ONE_CREDIT) == (
        EPOCH + timedelta(days=365)
    )


def test_depletion_of_ten_seats_is_rounded_up_to_the_second() -> None:
    # 10 credits a year against 1 credit: 1/10 year = 3,153,600 s exactly.
    assert depletion_instant(rate=10 * ONE_CREDIT, since=EPOCH, balance=ONE_CREDIT) == (
        EPOCH + timedelta(seconds=3_153_600)
    )
    # 7 credits a year against 1 credit: 31,536,000 / 7 = 4,505,142.857... s -> 4,505,143 s.
    assert depletion_instant(rate=7 * ONE_CREDIT, since=EPOCH, balance=ONE_CREDIT) == (
        EPOCH + timedelta(seconds=4_505_143)
    )


def test_depletion_half_a_microsecond_past_a_second_waits_for_the_next_second() -> None:
    # Two micro-credits a microsecond (2 x 31,536,000,000,000 a year) against 2,000,001
    # micro-credits: the balance lasts 1.0000005 s. At 1 s only 2,000,000 are burnt, so the
    # pool runs out at 2 s, not 1 s.
    rate = 2 * MICROSECONDS_PER_YEAR
    assert accrual(rate=rate, start=EPOCH, end=EPOCH + timedelta(seconds=1), balance=UNLIMITED) == (
        2_000_000
    )
    assert depletion_instant(rate=rate, since=EPOCH, balance=2_000_001) == (
        EPOCH + timedelta(seconds=2)
    )


def test_an_empty_pool_runs_out_at_once() -> None:
    since = EPOCH + timedelta(microseconds=250)
    assert depletion_instant(rate=ONE_CREDIT, since=since, balance=0) == (
        EPOCH + timedelta(seconds=1)
    )
    assert depletion_instant(rate=ONE_CREDIT, since=EPOCH, balance=0) == EPOCH


@settings(max_examples=200)
@given(rate=positive_rates, since=instants, data=st.data())
def test_depletion_is_the_first_whole_second_at_which_the_balance_is_burnt(
    rate: int, since: datetime, data: st.DataObject
) -> None:
    # Keep the answer inside the calendar: a balance of at most 2,000 years of burn.
    balance = data.draw(st.integers(min_value=1, max_value=min(MAX_MICROS, 2_000 * rate)))
    depleted = depletion_instant(rate=rate, since=since, balance=balance)
    assert depleted is not None
    assert depleted.microsecond == 0
    assert depleted >= since
    assert accrual(rate=rate, start=since, end=depleted, balance=UNLIMITED) >= balance
    one_second_earlier = depleted - timedelta(seconds=1)
    assert accrual(rate=rate, start=since, end=one_second_earlier, balance=UNLIMITED) < balance
    # With the balance as the cap, the pool is exactly empty at that instant.
    assert accrual(rate=rate, start=since, end=depleted, balance=balance) == balance


def test_depletion_far_beyond_the_calendar_does_not_crash() -> None:
    # One unlicensed seat (0.1 credit a year) against a pool of 1,000 credits: 10,000 years,
    # past datetime.max. A plausible org must get an answer (None or a far date), not a crash.
    depleted = depletion_instant(rate=100_000, since=EPOCH, balance=1_000 * ONE_CREDIT)
    assert depleted is not None
    assert depleted.year == 9_999


# Daily rate and burn rate ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "expected"),
    [
        (0, 0),
        (ONE_CREDIT, 2_740),  # 2739.726... rounds up
        (ONE_CREDIT // 10, 274),  # 273.972... rounds up
        (365, 1),
        (182, 0),  # 0.4986... rounds down
        (183, 1),  # 0.5013... rounds up
        (10 * ONE_CREDIT, 27_397),  # 27397.260... rounds down
    ],
)
def test_daily_rate_examples(rate: int, expected: int) -> None:
    assert daily_rate(rate) == expected


@settings(max_examples=200)
@given(rate=st.integers(min_value=0, max_value=10**18))
def test_daily_rate_is_the_yearly_rate_over_365_rounded_half_up(rate: int) -> None:
    exact = Fraction(rate, 365)
    expected = math.floor(exact + Fraction(1, 2))
    assert daily_rate(rate) == expected
    assert abs(Fraction(daily_rate(rate)) - exact) <= Fraction(1, 2)


seat_counts = st.builds(
    SeatCounts,
    licensed=st.integers(0, 10**6),
    unlicensed=st.integers(0, 10**6),
    external=st.integers(0, 10**6),
)
seat_rates = st.builds(
    SeatRates,
    licensed=st.integers(0, 10 * ONE_CREDIT),
    unlicensed=st.integers(0, 10 * ONE_CREDIT),
    external=st.integers(0, 10 * ONE_CREDIT),
)


@settings(max_examples=100)
@given(rates_=seat_rates, seats=seat_counts)
def test_burn_rate_sums_each_seat_times_its_rate(rates_: SeatRates, seats: SeatCounts) -> None:
    expected = sum(
        count * rates_.of(seat)
        for seat, count in (
            (Seat.LICENSED, seats.licensed),
            (Seat.UNLICENSED, seats.unlicensed),
            (Seat.EXTERNAL, seats.external),
        )
    )
    assert burn_rate(rates_, seats, paused=False) == expected


@settings(max_examples=50)
@given(rates_=seat_rates, seats=seat_counts)
def test_a_paused_org_burns_nothing(rates_: SeatRates, seats: SeatCounts) -> None:
    assert burn_rate(rates_, seats, paused=True) == 0


def test_burn_rate_of_the_usual_seats() -> None:
    # 1 credit a year licensed, 0.1 unlicensed, nothing for external (self-paying) members.
    usual = SeatRates(licensed=ONE_CREDIT, unlicensed=100_000, external=0)
    seats = SeatCounts(licensed=30, unlicensed=4, external=7)
    assert burn_rate(usual, seats, paused=False) == 30 * 1_000_000 + 4 * 100_000
    assert burn_rate(usual, SeatCounts(external=50), paused=False) == 0
    assert burn_rate(usual, SeatCounts(), paused=False) == 0


def test_seat_rates_of_each_kind() -> None:
    rates_ = SeatRates(licensed=3, unlicensed=2, external=1)
    assert rates_.of(Seat.LICENSED) == 3
    assert rates_.of(Seat.UNLICENSED) == 2
    assert rates_.of(Seat.EXTERNAL) == 1
    assert SeatRates().of(Seat.LICENSED) == 0
