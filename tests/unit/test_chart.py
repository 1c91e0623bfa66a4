"""The pool chart's lines: steps where credits moved, slopes where seats burnt, a forecast."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from creditpool.domain.amounts import credits
from creditpool.services.reports import PoolHistory, PoolPoint
from creditpool.services.views import BalanceView
from creditpool.web.chart import pool_chart

START = datetime(2026, 1, 1, tzinfo=UTC)


def balance(
    at: datetime, available: int, per_year: int, depletes_at: datetime | None
) -> BalanceView:
    return BalanceView(at, available, 0, 0, 0, 0, per_year, per_year // 365, depletes_at, 0)


def points(polyline: str) -> list[tuple[float, float]]:
    return [tuple(map(float, pair.split(","))) for pair in polyline.split()]  # type: ignore[misc]


def test_a_transfer_is_a_step_and_a_burn_is_a_slope_from_when_it_began():
    history = PoolHistory(
        [
            PoolPoint(START, credits("10")),
            PoolPoint(START + timedelta(days=10), credits("6")),  # an allotment
            # Seats burnt 1 credit from day 15 (a resume, say) to day 20.
            PoolPoint(
                START + timedelta(days=20),
                credits("5"),
                START + timedelta(days=15),
                START + timedelta(days=20),
            ),
        ],
        burning_since=None,
    )
    now = START + timedelta(days=30)

    chart = pool_chart(history, balance(now, credits("5"), 0, None))

    past = points(chart.past)
    # purchase; level to day 10; down to 6; level to day 15; slope to day 20; level to now
    assert len(past) == 7
    (x0, y0), (x1, y1), (x2, y2), (x3, y3), (x4, y4), (x5, y5), (x6, y6) = past
    assert (y1, y3, y5, y6) == (y0, y2, y4, y4)  # the level stretches
    assert x0 < x1 == x2 < x3 < x4 < x5 == x6
    assert y2 > y1  # the allotment: a step down (down the page is larger y)
    assert y4 > y3  # the burn: a slope down from day 15
    assert x6 == round(chart.now_x, 1)
    # Nothing burning: the forecast stays level for the year ahead.
    forecast = points(chart.forecast)
    assert forecast[0] == past[-1]
    assert forecast[-1][1] == y6
    assert "does not run out" in chart.summary


def test_the_forecast_reaches_zero_on_the_run_out_date_and_stays_there():
    now = START + timedelta(days=5)
    runs_out = now + timedelta(days=100)
    history = PoolHistory([PoolPoint(START, credits("10"))], burning_since=START)

    chart = pool_chart(history, balance(now, credits("10"), credits("36.5"), runs_out))

    forecast = points(chart.forecast)
    bottom = chart.height - chart.pad
    assert [y for _, y in forecast[1:]] == [bottom, bottom]
    assert forecast[1][0] < forecast[2][0]
    assert "runs out on 2026-04-16" in chart.summary
    assert chart.top_label == "10"


def test_a_far_run_out_date_is_not_drawn_and_crowded_labels_give_way_to_now():
    now = START + timedelta(minutes=5)  # a new org: its whole past is five minutes long
    runs_out = now + timedelta(days=6 * 365)
    history = PoolHistory([PoolPoint(START, credits("10"))], burning_since=START)

    chart = pool_chart(history, balance(now, credits("10"), credits("10") // 6, runs_out))

    forecast = points(chart.forecast)
    assert len(forecast) == 2  # never reaches zero on the chart
    assert forecast[-1][1] > forecast[0][1]  # but falls (down the page)
    assert chart.end_label == "2027-01-01"  # a year ahead
    assert chart.start_label == ""  # the month before now is too narrow to label


def test_a_burn_that_ran_the_pool_dry_stops_at_zero_where_it_did():
    dry = START + timedelta(days=100)
    history = PoolHistory(
        [
            PoolPoint(START, credits("10")),
            PoolPoint(START + timedelta(days=200), 0, START, dry),  # posted long after
        ],
        burning_since=None,
    )

    chart = pool_chart(history, balance(START + timedelta(days=200), 0, 0, None))

    (x0, y0), (x1, y1), (x2, y2), *_ = points(chart.past)
    bottom = chart.height - chart.pad
    assert x0 == x1  # the burn began at once
    assert (y1, y2) == (y0, bottom)
    assert x2 < round(chart.now_x, 1)  # and reached zero before it was posted
