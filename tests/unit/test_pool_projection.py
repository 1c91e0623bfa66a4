"""The pool's future with expiring lots (domain/lots.py) against the burn alone (metering)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from creditpool.domain.amounts import credits
from creditpool.domain.lots import PoolLot, project
from creditpool.domain.metering import LAST_INSTANT, accrual, depletion_instant

START = datetime(2026, 1, 1, tzinfo=UTC)
A_CREDIT_A_DAY = credits("365")  # a year's rate that burns one credit a day


def test_without_expiry_it_is_the_burn_alone() -> None:
    lots = [PoolLot(credits("10"), None), PoolLot(credits("5"), None)]
    later = START + timedelta(days=4)
    projection = project(rate=A_CREDIT_A_DAY, since=START, lots=lots, at=later)
    assert projection.available == credits("11")
    assert projection.depletes_at == START + timedelta(days=15)


def test_an_expiry_that_leaves_nothing_is_when_the_pool_runs_out() -> None:
    # 10 credits lapsing in 5 days, burning 1 a day: 5 are burnt, 5 lapse, the pool is empty.
    lots = [PoolLot(credits("10"), START + timedelta(days=5))]
    projection = project(rate=A_CREDIT_A_DAY, since=START, lots=lots, at=START)
    assert projection.available == credits("10")
    assert projection.depletes_at == START + timedelta(days=5)
    assert projection.lapses == ((START + timedelta(days=5), credits("5")),)
    after = project(rate=A_CREDIT_A_DAY, since=START, lots=lots, at=START + timedelta(days=6))
    assert after.available == 0


def test_the_burn_takes_the_first_lot_in_order_before_the_expiry() -> None:
    # A never-expiring lot of priority first: the burn spends it, the expiring one lapses whole.
    lots = [PoolLot(credits("3"), None), PoolLot(credits("10"), START + timedelta(days=5))]
    at_six = project(rate=A_CREDIT_A_DAY, since=START, lots=lots, at=START + timedelta(days=2))
    assert at_six.available == credits("11")
    # 3 burnt by day 3, then the expiring lot burns 2 more, and its 8 left lapse on day 5.
    assert at_six.depletes_at == START + timedelta(days=5)
    assert at_six.lapses == ((START + timedelta(days=5), credits("8")),)


def test_an_expiry_after_the_pool_runs_out_lapses_nothing() -> None:
    # 2 credits lapsing on day 1 and 1 on day 9, burning 1 a day: on day 1 the first has 1
    # left; the second is burnt by day 2, before its own expiry.
    first, second = START + timedelta(days=1), START + timedelta(days=9)
    lots = [PoolLot(credits("2"), first), PoolLot(credits("1"), second)]
    projection = project(rate=A_CREDIT_A_DAY, since=START, lots=lots, at=START)
    assert projection.lapses == ((first, credits("1")),)
    assert projection.depletes_at == START + timedelta(days=2)


def test_a_paused_pool_runs_out_only_by_expiry() -> None:
    lots = [PoolLot(credits("4"), START + timedelta(days=2)), PoolLot(credits("1"), None)]
    projection = project(rate=0, since=START, lots=lots, at=START + timedelta(days=3))
    assert projection.available == credits("1")
    assert projection.depletes_at is None


@settings(max_examples=60, deadline=None)
@given(
    amounts=st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=5),
    rate=st.integers(min_value=0, max_value=10**10),
    seconds=st.integers(min_value=0, max_value=10**8),
)
def test_never_expiring_lots_project_as_one_balance(
    amounts: list[int], rate: int, seconds: int
) -> None:
    at = START + timedelta(seconds=seconds)
    total = sum(amounts)
    projection = project(
        rate=rate, since=START, lots=[PoolLot(amount, None) for amount in amounts], at=at
    )
    assert projection.available == total - accrual(rate=rate, start=START, end=at, balance=total)
    expected = depletion_instant(rate=rate, since=START, balance=total) if total or rate else None
    assert projection.depletes_at == expected


@settings(max_examples=80, deadline=None)
@given(
    lots=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=10**8),
            st.one_of(st.none(), st.integers(min_value=1, max_value=10**6)),
        ),
        min_size=1,
        max_size=5,
    ),
    rate=st.integers(min_value=0, max_value=10**11),
    first=st.integers(min_value=0, max_value=2 * 10**6),
    later=st.integers(min_value=0, max_value=2 * 10**6),
)
def test_every_credit_is_available_burnt_or_lapsed_and_less_remains_later(
    lots: list[tuple[int, int | None]], rate: int, first: int, later: int
) -> None:
    pool = [
        PoolLot(amount, None if seconds is None else START + timedelta(seconds=seconds))
        for amount, seconds in lots
    ]
    at = START + timedelta(seconds=first)
    projection = project(rate=rate, since=START, lots=pool, at=at)
    total = sum(amount for amount, _ in lots)
    assert projection.available + projection.burnt + projection.lapsed == total
    assert min(projection.available, projection.burnt, projection.lapsed) >= 0
    after = project(rate=rate, since=START, lots=pool, at=at + timedelta(seconds=later))
    assert after.available <= projection.available
    assert after.depletes_at == projection.depletes_at  # the outlook does not depend on `at`
    if projection.depletes_at is not None and projection.depletes_at < LAST_INSTANT:
        empty = project(rate=rate, since=START, lots=pool, at=max(at, projection.depletes_at))
        assert empty.available == 0
