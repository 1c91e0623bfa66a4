"""A long pool history draws in a bounded number of points, keeping its highs and lows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from creditpool.domain.amounts import credits
from creditpool.services.reports import PoolHistory, PoolPoint
from creditpool.services.views import BalanceView
from creditpool.web.chart import HEIGHT, PAD, WIDTH, pool_chart

START = datetime(2020, 1, 1, tzinfo=UTC)


def test_a_hundred_thousand_moves_draw_in_at_most_four_points_per_pixel_column() -> None:
    # Five years of moves every half hour, up and down, with one deep dip in the middle.
    moves = [
        PoolPoint(
            START + timedelta(minutes=30 * i),
            credits("1") if i == 50_000 else credits("50") + credits("10") * (i % 2),
        )
        for i in range(100_000)
    ]
    now = moves[-1].at + timedelta(days=1)
    balance = BalanceView(now, credits("50"), 0, 0, 0, 0, 0, 0, None, 0)

    chart = pool_chart(PoolHistory(moves, burning_since=None), balance)

    past = [tuple(map(float, pair.split(","))) for pair in chart.past.split()]
    assert len(past) <= 4 * (WIDTH - 2 * PAD + 1)
    assert len(chart.past) < 40_000  # characters: a small part of the page
    lowest = HEIGHT - PAD - (HEIGHT - 2 * PAD) * credits("1") / credits("60")
    assert max(y for _, y in past) == round(lowest, 1)  # the dip is still drawn
    assert [x for x, _ in past] == sorted(x for x, _ in past)
