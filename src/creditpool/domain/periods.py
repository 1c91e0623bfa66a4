"""Period boundaries of automatic-allocation budgets, in an org's own time zone.

A week starts on Monday at 00:00 local time, a month on the 1st at 00:00 local time. Bounds
are computed on the local calendar and only then turned into UTC instants, so a week that
contains a daylight-saving change lasts 167 or 169 hours, and every boundary lands on local
midnight whatever the offset. A local midnight that a clock change skips (a few zones move
their clocks at 00:00) is taken at the offset before the change: the instant the day begins.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from creditpool.domain.errors import InvalidInput
from creditpool.domain.model import Period

DEFAULT_TIMEZONE = "UTC"
MAX_TIMEZONE_LENGTH = 64

# Offered first by the settings page; any IANA name is accepted.
COMMON_TIMEZONES = (
    "UTC",
    "Europe/London",
    "Europe/Paris",
    "Europe/Berlin",
    "Europe/Madrid",
    "Europe/Rome",
    "Europe/Amsterdam",
    "Europe/Stockholm",
    "Europe/Warsaw",
    "Europe/Athens",
    "Europe/Moscow",
    "Africa/Lagos",
    "Africa/Johannesburg",
    "Asia/Dubai",
    "Asia/Kolkata",
    "Asia/Singapore",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Pacific/Auckland",
    "America/Sao_Paulo",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
)


@cache
def _known_timezones() -> frozenset[str]:
    # The names zoneinfo can load from the system's zone files or the tzdata package; read
    # once, as listing them walks the files. "localtime" is no IANA name but the host's own
    # zone file: it would move with the machine, and be missing on one without it.
    return (frozenset(available_timezones()) - {"localtime"}) | {DEFAULT_TIMEZONE}


def check_timezone(name: str) -> str:
    """Return `name` if it is an IANA time zone; raise InvalidInput otherwise."""
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_TIMEZONE_LENGTH:
        raise InvalidInput("a time zone is an IANA name such as Europe/Paris")
    if name not in _known_timezones():
        raise InvalidInput(f"unknown time zone {name!r}: use an IANA name such as Europe/Paris")
    return name


def check_period(value: str | None) -> Period | None:
    """Return the period named (None: no period); raise InvalidInput for any other value."""
    if value is None:
        return None
    try:
        return Period(value)
    except ValueError:
        raise InvalidInput("a period is null, 'week' or 'month'") from None


def zone_of(name: str) -> ZoneInfo:
    """Return the ZoneInfo of a checked IANA name."""
    return ZoneInfo(check_timezone(name))


def _first_day(period: Period, day: date) -> date:
    if period is Period.WEEK:
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def _next_first_day(period: Period, first: date) -> date:
    if period is Period.WEEK:
        return first + timedelta(days=7)
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def end_of_day(day: date, timezone: str) -> datetime:
    """Return the instant (UTC) a local calendar day of the zone ends: the next midnight."""
    return _local_midnight(day + timedelta(days=1), zone_of(timezone))


def period_bounds(period: Period, timezone: str, at: datetime) -> tuple[datetime, datetime]:
    """Return the start and end (UTC) of the period containing `at`, in the zone's local
    time: start <= at < end."""
    zone = zone_of(timezone)
    first = _first_day(period, at.astimezone(zone).date())
    start = _local_midnight(first, zone)
    end = _local_midnight(_next_first_day(period, first), zone)
    return start, end
