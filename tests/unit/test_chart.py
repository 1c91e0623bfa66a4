"""The pool chart's lines: steps where credits moved, slopes where seats burnt, a forecast."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from creditpool.domain.amounts import credits
from creditpool.services.reports import PoolPoint
from creditpool.services.views import BalanceView
from creditpool.web.chart import pool_chart

START = datetime(2026, 1, 1, tzinfo=UTC)


def balance(
    at: datetime, available: int, per_year: int, depletes_at: datetime | None
) -> BalanceView:
    return BalanceView(at, available, 0, 0, 0, 0, per_year, per_year // 365, depletes_at)


def points(polyline: str) -> list[tuple[float, float]]:
    return [tuple(map(float, pair.split(","))) for pair in polyline.split()]  # type: ignore[misc]


def test_a_transfer_is_a_step_and_a_burn_is_a_slope():
    history = [
        PoolPoint(START, credits("10"), burned=False),
        PoolPoint(START + timedelta(days=10), credits("6"), burned=False),  # an allotment
        PoolPoint(START + timedelta(days=20), credits("5"), burned=True),  # seats burnt 1
    ]
    now = START + timedelta(days=30)

    chart = pool_chart(history, balance(now, credits("5"), 0, None))

    past = points(chart.past)
    # purchase, flat to day 10, down to 6, slope to day 20, flat to now (nothing burns)
    assert len(past) == 5
    (x0, y0), (x1, y1), (x2, y2), (x3, y3), (x4, y4) = past
    assert y1 == y0
    assert x1 > x0
    assert x2 == x1
    assert y2 > y1
    assert x3 > x2
    assert y3 > y2
    assert y4 == y3
    assert x4 == round(chart.now_x, 1)
    # Nothing burning: the forecast stays level for the year ahead.
    forecast = points(chart.forecast)
    assert forecast[0] == past[-1]
    assert forecast[-1][1] == y4
    assert "does not run out" in chart.summary


def test_the_forecast_reaches_zero_on_the_run_out_date_and_stays_there():
    now = START + timedelta(days=5)
    runs_out = now + timedelta(days=100)
    history = [PoolPoint(START, credits("10"), burned=False)]

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
    history = [PoolPoint(START, credits("10"), burned=False)]

    chart = pool_chart(history, balance(now, credits("10"), credits("10") // 6, runs_out))

    forecast = points(chart.forecast)
    assert len(forecast) == 2  # never reaches zero on the chart
    assert forecast[-1][1] > forecast[0][1]  # but falls (down the page)
    assert chart.end_label == "2027-01-01"  # a year ahead
    assert chart.start_label == ""  # the month before now is too narrow to label
