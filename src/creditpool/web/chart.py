"""The pool's balance over time as an SVG line: the past from the ledger, the forecast from
the current burn rate. Drawn on the server; no script, no chart library."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from creditpool.domain.amounts import format_credits
from creditpool.services.reports import PoolHistory
from creditpool.services.views import BalanceView

WIDTH, HEIGHT, PAD = 640, 200, 36
LEAST_SPAN = timedelta(days=30)  # a new org's chart still spans a month either side of now
YEAR = timedelta(days=365)
LONGEST_FORECAST = 5 * YEAR


@dataclass(frozen=True)
class Chart:
    """What the template draws."""

    past: str  # SVG polyline points
    forecast: str
    top_label: str
    start_label: str
    end_label: str
    now_x: float
    summary: str  # the same in words, for screen readers
    width: int = WIDTH
    height: int = HEIGHT
    pad: int = PAD


def pool_chart(history: PoolHistory, balance: BalanceView) -> Chart:
    """Return the chart of the pool: posted history to now, then the forecast at the current
    rate up to the run-out date (within five years) or a year."""
    now = balance.at
    past: list[tuple[datetime, int]] = []

    def move(
        at: datetime, value: int, began: datetime | None = None, ended: datetime | None = None
    ) -> None:
        """Reach `value` at `at`: a step there, or a slope from `began` to `ended`, then level."""
        if not past:
            past.append((at, value))
            return
        last_at, last_value = past[-1]
        if began is None:
            past.extend([(at, last_value), (at, value)])
            return
        began = max(began, last_at)
        ended = max(min(ended or at, at), began)
        past.extend([(began, last_value), (ended, value)])
        if ended < at:
            past.append((at, value))  # dry from `ended` on

    for point in history.points:
        move(point.at, point.balance, point.burn_began, point.burn_ended)
    # The burn not posted yet: from when it began to now, or to when it ran the pool dry.
    move(now, balance.available, history.burning_since, history.dry_since)
    start = min(past[0][0], now - LEAST_SPAN)
    end = _forecast_end(balance, looked_back=now - start)
    forecast = [(now, balance.available)]
    if balance.depletes_at is not None and balance.depletes_at < end:
        forecast += [(balance.depletes_at, 0), (end, 0)]
    else:
        left = balance.available - balance.burn_rate_per_year * ((end - now) / YEAR)
        forecast.append((end, max(0, int(left))))
    top = max([1] + [value for _, value in past + forecast])

    def x(at: datetime) -> float:
        span = (end - start).total_seconds() or 1
        return PAD + (WIDTH - 2 * PAD) * (at - start).total_seconds() / span

    def y(value: int) -> float:
        return HEIGHT - PAD - (HEIGHT - 2 * PAD) * value / top

    def line(points: list[tuple[datetime, int]]) -> str:
        drawn = _thinned([(x(at), y(value)) for at, value in points])
        return " ".join(f"{px:.1f},{py:.1f}" for px, py in drawn)

    runs_out = (
        f"runs out on {balance.depletes_at:%Y-%m-%d}"
        if balance.depletes_at
        else "does not run out at the current rate"
    )
    # Two labels closer than this would print over each other: "now" wins.
    start_label = f"{start:%Y-%m-%d}" if x(now) - x(start) > 80 else ""
    return Chart(
        past=line(past),
        forecast=line(forecast),
        top_label=format_credits(top),
        start_label=start_label,
        end_label=f"{end:%Y-%m-%d}",
        now_x=x(now),
        summary=(
            f"Pool balance since {past[0][0]:%Y-%m-%d}: "
            f"{format_credits(balance.available)} credits available now; {runs_out}."
        ),
    )


def _forecast_end(balance: BalanceView, *, looked_back: timedelta) -> datetime:
    """Where the forecast stops: a little after the run-out date when it comes within five
    years; otherwise as far ahead as the chart looks back (a year at least while seats burn)."""
    now = balance.at
    if balance.depletes_at is not None and balance.depletes_at - now <= LONGEST_FORECAST:
        return balance.depletes_at + max((balance.depletes_at - now) / 10, timedelta(days=1))
    ahead = max(looked_back, YEAR if balance.burn_rate_per_year else LEAST_SPAN)
    return now + min(ahead, LONGEST_FORECAST)


def _thinned(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The same line with at most four points per pixel column (where it entered, its highest,
    its lowest, where it left): a long history draws as it would, in a bounded page."""
    columns: dict[int, list[tuple[float, float]]] = {}
    for point in points:  # x never goes back: each column's points are consecutive
        columns.setdefault(int(point[0]), []).append(point)
    kept: list[tuple[float, float]] = []
    for column in columns.values():
        if len(column) <= 4:
            kept += column
            continue
        inner = range(1, len(column) - 1)
        high = min(inner, key=lambda i: column[i][1])  # SVG's y grows downwards
        low = max(inner, key=lambda i: column[i][1])
        kept += [column[0], *(column[i] for i in sorted({high, low})), column[-1]]
    return kept
