"""Period boundaries in an org's time zone: weeks from Monday 00:00, months from the 1st 00:00,
local time, daylight-saving changes included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from creditpool.domain.errors import InvalidInput
from creditpool.domain.model import Period
from creditpool.domain.periods import check_period, check_timezone, period_bounds
from creditpool.domain.policies import OrgSettings, SettingsChange

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def hours(start: datetime, end: datetime) -> float:
    return (end - start) / timedelta(hours=1)


def test_a_week_in_utc_runs_from_monday_midnight_to_the_next() -> None:
    # Thursday 1 January 2026: its week began on Monday 29 December 2025.
    start, end = period_bounds(Period.WEEK, "UTC", utc(2026, 1, 1, 15, 30))
    assert (start, end) == (utc(2025, 12, 29), utc(2026, 1, 5))
    # Monday 00:00 itself opens the next week; the instant before it closes this one.
    assert period_bounds(Period.WEEK, "UTC", utc(2026, 1, 5))[0] == utc(2026, 1, 5)
    last = utc(2026, 1, 5) - timedelta(microseconds=1)
    assert period_bounds(Period.WEEK, "UTC", last) == (start, end)


def test_a_month_in_utc_from_the_first_to_the_first() -> None:
    assert period_bounds(Period.MONTH, "UTC", utc(2026, 1, 31, 23, 59)) == (
        utc(2026, 1, 1),
        utc(2026, 2, 1),
    )
    # December rolls into the next year.
    assert period_bounds(Period.MONTH, "UTC", utc(2026, 12, 15)) == (
        utc(2026, 12, 1),
        utc(2027, 1, 1),
    )


def test_february_of_a_leap_year_has_29_days() -> None:
    start, end = period_bounds(Period.MONTH, "UTC", utc(2028, 2, 29, 12))
    assert (start, end) == (utc(2028, 2, 1), utc(2028, 3, 1))
    assert end - start == timedelta(days=29)
    start, end = period_bounds(Period.MONTH, "UTC", utc(2027, 2, 10))
    assert end - start == timedelta(days=28)


def test_the_week_of_the_spring_change_in_paris_lasts_167_hours() -> None:
    # Clocks go from 02:00 to 03:00 on Sunday 29 March 2026 in Paris.
    start, end = period_bounds(Period.WEEK, "Europe/Paris", utc(2026, 3, 25, 12))
    assert start == utc(2026, 3, 22, 23)  # Monday 23 March 00:00 at +01:00
    assert end == utc(2026, 3, 29, 22)  # Monday 30 March 00:00 at +02:00
    assert hours(start, end) == 167
    assert start.astimezone(PARIS).timetuple()[:6] == (2026, 3, 23, 0, 0, 0)
    assert end.astimezone(PARIS).timetuple()[:6] == (2026, 3, 30, 0, 0, 0)
    # The week after is a plain 168 hours again.
    following = period_bounds(Period.WEEK, "Europe/Paris", end)
    assert following == (end, end + timedelta(hours=168))


def test_the_week_of_the_autumn_change_in_paris_lasts_169_hours() -> None:
    # Clocks go from 03:00 back to 02:00 on Sunday 25 October 2026.
    start, end = period_bounds(Period.WEEK, "Europe/Paris", utc(2026, 10, 25, 1, 30))
    assert (start, end) == (utc(2026, 10, 18, 22), utc(2026, 10, 25, 23))
    assert hours(start, end) == 169


def test_new_york_changes_on_other_sundays() -> None:
    # Spring: 8 March 2026 at 02:00 -> 03:00; autumn: 1 November 2026 at 02:00 -> 01:00.
    start, end = period_bounds(Period.WEEK, "America/New_York", utc(2026, 3, 8, 12))
    assert (start, end) == (utc(2026, 3, 2, 5), utc(2026, 3, 9, 4))
    assert hours(start, end) == 167
    start, end = period_bounds(Period.WEEK, "America/New_York", utc(2026, 11, 1, 12))
    assert (start, end) == (utc(2026, 10, 26, 4), utc(2026, 11, 2, 5))
    assert hours(start, end) == 169
    # March there is an hour short: it starts at standard time and ends at summer time.
    march = period_bounds(Period.MONTH, "America/New_York", utc(2026, 3, 20))
    assert march == (utc(2026, 3, 1, 5), utc(2026, 4, 1, 4))
    assert hours(*march) == 31 * 24 - 1


def test_a_local_date_decides_not_the_utc_one() -> None:
    # Sunday 31 May 2026, 23:30 in New York is already Monday 1 June in UTC: still May's
    # last week and May's month there.
    late_sunday = datetime(2026, 5, 31, 23, 30, tzinfo=NEW_YORK)
    week = period_bounds(Period.WEEK, "America/New_York", late_sunday)
    assert week[1].astimezone(NEW_YORK).timetuple()[:4] == (2026, 6, 1, 0)
    month = period_bounds(Period.MONTH, "America/New_York", late_sunday)
    assert month[0].astimezone(NEW_YORK).timetuple()[:4] == (2026, 5, 1, 0)
    # In Paris the same instant is Monday 1 June, 05:30: June's month and a new week.
    month = period_bounds(Period.MONTH, "Europe/Paris", late_sunday)
    assert month[0] == utc(2026, 5, 31, 22)


# Hypothesis bounds its instants by naive datetimes, then gives them the zone drawn.
EARLIEST = datetime(2000, 1, 1)  # noqa: DTZ001
LATEST = datetime(2100, 1, 1)  # noqa: DTZ001


@given(
    at=st.datetimes(min_value=EARLIEST, max_value=LATEST, timezones=st.just(UTC)),
    zone=st.sampled_from(["UTC", "Europe/Paris", "America/New_York", "Australia/Sydney"]),
    period=st.sampled_from(list(Period)),
)
def test_every_instant_lies_in_its_period_which_starts_at_local_midnight(
    at: datetime, zone: str, period: Period
) -> None:
    start, end = period_bounds(period, zone, at)
    assert start <= at < end
    local_start = start.astimezone(ZoneInfo(zone))
    assert (local_start.hour, local_start.minute) == (0, 0)
    if period is Period.WEEK:
        assert local_start.weekday() == 0
        assert hours(start, end) in (167, 168, 169)
    else:
        assert local_start.day == 1
    # The next period starts where this one ends.
    assert period_bounds(period, zone, end)[0] == end


@pytest.mark.parametrize(
    "name", ["Mars/Olympus", "europe/paris", "", "../etc/passwd", "x" * 65, "localtime"]
)
def test_an_unknown_time_zone_is_refused_by_name(name: str) -> None:
    with pytest.raises(InvalidInput, match="time zone"):
        check_timezone(name)
    with pytest.raises(InvalidInput):
        SettingsChange(timezone=name).applied_to(OrgSettings())


def test_a_period_is_a_week_a_month_or_none() -> None:
    assert check_period("week") is Period.WEEK
    assert check_period(None) is None
    with pytest.raises(InvalidInput, match="period"):
        check_period("fortnight")


def test_settings_keep_or_change_the_period_and_zone() -> None:
    weekly = SettingsChange(
        auto_period=Period.WEEK, period_set=True, auto_reclaim=True, timezone="Europe/Paris"
    ).applied_to(OrgSettings())
    assert (weekly.auto_allocation.period, weekly.auto_allocation.reclaim) == (Period.WEEK, True)
    assert weekly.timezone == "Europe/Paris"
    # An absent period keeps it; a period set to None turns it off.
    kept = SettingsChange(auto_reclaim=False).applied_to(weekly)
    assert kept.auto_allocation.period is Period.WEEK
    off = SettingsChange(auto_period=None, period_set=True).applied_to(weekly)
    assert off.auto_allocation.period is None
    assert off.timezone == "Europe/Paris"
