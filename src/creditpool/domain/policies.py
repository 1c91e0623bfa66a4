"""Organisation settings and the automatic-allocation rule.

Automatic allocation, exactly: when usage (or a hold) of `amount` meets a member with `w` <
`amount` available and the policy is enabled, the member receives `k` bundles, the least `k`
with `w + k * bundle >= amount`, provided `auto_allocated + k * bundle <= max_per_member`. (The
pool must also hold `k * bundle`; the ledger checks that when it debits the pool.) Otherwise
nothing moves. Manual allotment never counts toward the cap.

With a `period` (a week or a month, in the org's `timezone`), `auto_allocated` is what the member
received automatically since the period began (services/periods.py settles each boundary), so
the cap is a budget per period; with `reclaim`, what is left of it at the end goes back to the
pool (if the org is returnable).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TypeVar

from creditpool.domain.amounts import format_credits
from creditpool.domain.errors import InsufficientCredits, InvalidPolicy
from creditpool.domain.metering import SeatRates
from creditpool.domain.model import Period
from creditpool.domain.periods import DEFAULT_TIMEZONE, check_timezone

DEFAULT_BUNDLE = 5_000_000

T = TypeVar("T")


@dataclass(frozen=True)
class AutoAllocation:
    """Top members up from the pool in bundles, up to a cap per member (micro-credits)."""

    enabled: bool = False
    bundle: int = DEFAULT_BUNDLE
    max_per_member: int = 0
    period: Period | None = None  # None: the cap counts for ever
    reclaim: bool = False  # a period's unused automatic credits go back at its end

    def validated(self) -> AutoAllocation:
        """Return self, or raise InvalidPolicy when bundle and cap disagree."""
        if self.bundle <= 0:
            raise InvalidPolicy("the bundle must be greater than zero")
        if self.max_per_member < 0 or self.max_per_member % self.bundle:
            raise InvalidPolicy(
                f"the maximum per member must be a multiple of the bundle "
                f"({format_credits(self.bundle)}); got {format_credits(self.max_per_member)}"
            )
        return self

    def top_up(self, *, available: int, amount: int, auto_allocated: int) -> int:
        """Return the micro-credits to allot before charging `amount`; raise when capped."""
        if available >= amount:
            return 0
        if not self.enabled:
            raise InsufficientCredits(
                f"the member has {format_credits(available)} available, "
                f"{format_credits(amount)} needed"
            )
        bundles = -(-(amount - available) // self.bundle)
        top_up = bundles * self.bundle
        if auto_allocated + top_up > self.max_per_member:
            span = "" if self.period is None else f" this {self.period}"
            raise InsufficientCredits(
                f"{bundles} more bundle(s) would pass the automatic cap of "
                f"{format_credits(self.max_per_member)} per member{span} "
                f"({format_credits(auto_allocated)} already allotted automatically{span})"
            )
        return top_up


@dataclass(frozen=True)
class Alerts:
    """When the owner hears the pool runs low (None: off): its available below `low_balance`
    micro-credits, or its seat burn emptying it within `days_left` days."""

    low_balance: int | None = None
    days_left: int | None = None

    def validated(self) -> Alerts:
        """Return self, or raise InvalidPolicy for a threshold that is not positive."""
        if self.low_balance is not None and self.low_balance <= 0:
            raise InvalidPolicy("the low-balance alert must be greater than zero (null: off)")
        if self.days_left is not None and not 1 <= self.days_left <= MAX_ALERT_DAYS:
            raise InvalidPolicy(f"the days-left alert is 1 to {MAX_ALERT_DAYS} days (null: off)")
        return self


MAX_ALERT_DAYS = 3650


@dataclass(frozen=True)
class OrgSettings:
    """What an org's owner decides: returns to the pool, automatic allocation, seat rates,
    alerts, and the time zone of period boundaries (IANA)."""

    returnable: bool = True
    auto_allocation: AutoAllocation = field(default_factory=AutoAllocation)
    seat_rates: SeatRates = field(default_factory=SeatRates)
    alerts: Alerts = field(default_factory=Alerts)
    timezone: str = DEFAULT_TIMEZONE

    def validated(self) -> OrgSettings:
        """Return self, or raise InvalidPolicy / InvalidInput for a contradiction or an unknown
        time zone."""
        self.auto_allocation.validated()
        check_timezone(self.timezone)
        self.alerts.validated()
        for rate in (
            self.seat_rates.licensed,
            self.seat_rates.unlicensed,
            self.seat_rates.external,
        ):
            if rate < 0:
                raise InvalidPolicy("a seat rate cannot be negative")
        return self


@dataclass(frozen=True)
class SettingsChange:
    """A partial change of settings: each None keeps the current value."""

    returnable: bool | None = None
    auto_enabled: bool | None = None
    auto_bundle: int | None = None
    auto_max_per_member: int | None = None
    rate_licensed: int | None = None
    rate_unlicensed: int | None = None
    rate_external: int | None = None
    # Alert thresholds may be turned off (None), so only those named in `alerts_set` change.
    alert_low_balance: int | None = None
    alert_days_left: int | None = None
    alerts_set: frozenset[str] = frozenset()
    # The period may be turned off (None), so it changes only when `period_set` says so.
    auto_period: Period | None = None
    period_set: bool = False
    auto_reclaim: bool | None = None
    timezone: str | None = None

    def applied_to(self, settings: OrgSettings) -> OrgSettings:
        """Return the settings with this change applied and validated."""
        auto = settings.auto_allocation
        rates = settings.seat_rates
        alerts = settings.alerts
        changed = OrgSettings(
            returnable=_keep(self.returnable, settings.returnable),
            auto_allocation=replace(
                auto,
                enabled=_keep(self.auto_enabled, auto.enabled),
                bundle=_keep(self.auto_bundle, auto.bundle),
                max_per_member=_keep(self.auto_max_per_member, auto.max_per_member),
                period=self.auto_period if self.period_set else auto.period,
                reclaim=_keep(self.auto_reclaim, auto.reclaim),
            ),
            seat_rates=SeatRates(
                licensed=_keep(self.rate_licensed, rates.licensed),
                unlicensed=_keep(self.rate_unlicensed, rates.unlicensed),
                external=_keep(self.rate_external, rates.external),
            ),
            alerts=Alerts(
                low_balance=(
                    self.alert_low_balance
                    if "low_balance" in self.alerts_set
                    else alerts.low_balance
                ),
                days_left=(
                    self.alert_days_left if "days_left" in self.alerts_set else alerts.days_left
                ),
            ),
            timezone=_keep(self.timezone, settings.timezone),
        )
        return changed.validated()


def _keep(new: T | None, current: T) -> T:
    return current if new is None else new
