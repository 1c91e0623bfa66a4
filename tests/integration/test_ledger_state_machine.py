"""The ledger against a model: random operations, every figure predicted in plain integers.

Hypothesis drives one fresh org per example through the real services: purchases, allocations
and revocations (to some members, all students, a group), usage with metrics (automatic
allocation on in some runs), holds (placed, captured, voided, left to expire), seat and role
changes, members leaving and coming back, pauses, settings changes and resets, with the clock
stepped from seconds to months; a child org funded from the org's pool and asked to give back;
weekly or monthly budgets of automatic allocation, in three time zones, whose boundaries the
clock crosses. A small model written here, integers of micro-credits in plain dicts and
dataclasses, predicts every figure and every refusal. After each step the org's balance, each
member's figures, the org's settings, the child's balance and the parent's roll-up must equal
the model's; at the end of each example the audit must find the books clean (it is the costliest
check, and a breach stays in the books). A refused operation must change nothing, which the
same comparison shows.

A period's boundary is settled by the first write that finds it passed, before that write acts
(services/periods.py): with reclaim on and the org returnable, each active member gives back
min(spendable, max(0, received automatically this period - used this period)), and every
member's counters start afresh. A refused write rolls the settling back with the rest. The
model settles at the same moments; reads settle nothing, so until a write comes the figures
stand as they were, the passed boundary included.

The model meters seats by itself, as the README says (seat metering with no daily job): the
burn since the last change is min(pool, rate x elapsed microseconds / microseconds in a year),
rounded down; it is posted, and a new interval starts, just before anything changes the pool's
balance or the rate, and at no other time (posting splits the interval, which rounds down twice).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from copy import deepcopy
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from creditpool.domain.amounts import credits
from creditpool.domain.errors import (
    AlreadyMember,
    CreditpoolError,
    InsufficientCredits,
    InvalidPolicy,
    MemberRemoved,
    NotFound,
    NotReturnable,
    OrgPaused,
    OwnerRequired,
)
from creditpool.domain.metering import SeatRates
from creditpool.domain.model import HoldStatus, MemberStatus, Period, Role, Seat
from creditpool.domain.policies import AutoAllocation, OrgSettings, SettingsChange
from creditpool.services import credits as credit_service
from creditpool.services import families, reports, resets, usage
from creditpool.services import groups as group_service
from creditpool.services import holds as hold_service
from creditpool.services import members as member_service
from creditpool.services import orgs as org_service
from creditpool.services.audit import audit
from creditpool.services.family_rollup import RollupView
from creditpool.services.targets import Target
from creditpool.services.views import MemberView
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.clock import START, FakeClock
from tests.support.factories import OPERATOR, add_members, make_org, make_user

T = TypeVar("T")

USAGE_KEY = "apikey:state-machine"
MICROSECONDS_A_YEAR = 365 * 24 * 60 * 60 * 1_000_000
# A pool that lasts past the calendar (0.1 credit a year against 1,000) cannot say the day; the
# contract does not say which instant then, so the check asks only for the calendar's last year.
LAST_CALENDAR_YEAR = 9999
BEYOND_THE_CALENDAR = "in the calendar's last year"
MAX_MEMBERS = 8
GROUP_NAMES = ("Class A", "Class B")

# Amounts as the decimal text a caller would send; they shrink towards the first one.
ALLOTMENTS = st.sampled_from(["5", "1", "2.5", "10", "0.5", "0.000001"])
CHARGES = st.sampled_from(["1", "0.5", "2", "0.25", "3", "7", "0.000001"])
PURCHASES = st.sampled_from(["10", "1", "2.5", "25", "60", "0.000001"])
SEAT_RATES = st.sampled_from(["1", "0.1", "2.5", "365", "0"])  # credits a year per seat
BUNDLES = st.sampled_from(["1", "2.5", "5"])
CAPS = st.sampled_from(["0", "5", "10", "3", "7.5", "20"])  # some are no multiple of a bundle
SEATS = st.sampled_from([Seat.LICENSED, Seat.UNLICENSED, Seat.EXTERNAL])
METRICS = st.none() | st.dictionaries(
    st.sampled_from(["renders", "frames"]), st.integers(0, 240), max_size=2
)
HOLD_SECONDS = st.sampled_from([3600, 60, 1, 86_400, 604_800])
PERIODS = st.sampled_from([Period.WEEK, None, Period.MONTH])
# Zones with daylight-saving changes inside the weeks the clock reaches (March 2026).
TIMEZONES = st.sampled_from(["UTC", "Europe/Paris", "America/New_York"])
PAST_THE_BOUNDARY = st.sampled_from([timedelta(seconds=1), timedelta(0), timedelta(days=9)])
CLOCK_UNITS = st.sampled_from(["hours", "seconds", "minutes", "days", "weeks"])


def maybe(strategy: st.SearchStrategy[T]) -> st.SearchStrategy[T | None]:
    """None (keep the current value) or a value."""
    return st.none() | strategy


def period_end(period: Period, timezone: str, at: datetime) -> datetime:
    """The end of the period containing `at`: the next Monday, or 1st, at 00:00 local time."""
    zone = ZoneInfo(timezone)
    day = at.astimezone(zone).date()
    if period is Period.WEEK:
        first = day + timedelta(days=7 - day.weekday())
    else:
        first = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return datetime.combine(first, time(0), tzinfo=zone).astimezone(UTC)


# The model


@dataclass
class MemberModel:
    """One membership: its wallet and running totals, in micro-credits."""

    user_id: str
    role: Role
    seat: Seat
    active: bool = True
    wallet: int = 0  # in the wallet, held credits included
    allocated: int = 0
    auto_allocated: int = 0
    used: int = 0
    usage: dict[str, int] = field(default_factory=dict)
    auto_period: int = 0  # received automatically since the period began
    period_base: int = 0  # `used` when the period began


@dataclass
class HoldModel:
    """A reserve of a member's credits."""

    member_id: str
    amount: int
    expires_at: datetime
    status: HoldStatus = HoldStatus.PENDING


@dataclass
class OrgModel:
    """What the books of one org must say, worked out in plain integers."""

    clock: FakeClock
    since: datetime  # start of the burn interval not yet posted
    returnable: bool
    auto_enabled: bool
    bundle: int
    cap: int
    rates: dict[Seat, int]  # micro-credits a year per active seat
    paused: bool = False
    ancestor_paused: bool = False  # a child's parent is paused: its seats burn nothing
    pool: int = 0  # posted balance
    metered: int = 0  # posted burn
    purchased: int = 0
    used: int = 0
    members: dict[str, MemberModel] = field(default_factory=dict)
    holds: dict[str, HoldModel] = field(default_factory=dict)
    groups: dict[str, set[str]] = field(default_factory=dict)
    # Budgets per period: the cap counts per period; with reclaim, what is left of a period's
    # automatic credits goes back at its end, settled by the first write that finds it passed.
    period: Period | None = None
    reclaim: bool = False
    timezone: str = "UTC"
    period_ends_at: datetime | None = None

    @property
    def now(self) -> datetime:
        return self.clock.now()

    # Metering

    def rate(self) -> int:
        """Micro-credits a year: each active seat's rate, nothing while it or its parent is
        paused."""
        if self.paused or self.ancestor_paused:
            return 0
        return sum(self.rates[m.seat] for m in self.members.values() if m.active)

    def burnt(self) -> int:
        """The burn of the interval not yet posted, at the current rate, capped by the pool."""
        elapsed = (self.now - self.since) // timedelta(microseconds=1)
        return min(self.pool, self.rate() * elapsed // MICROSECONDS_A_YEAR)

    def pool_available(self) -> int:
        return self.pool - self.burnt()

    @contextmanager
    def change(self) -> Iterator[None]:
        """Apply a change; if it moved the pool's balance or the rate, post the burn before it.

        The burn is worked out before the change (old rate, old balance) and written only when
        the change turns out to touch the pool or the rate, as services/metering.py has it.
        """
        rate, pool, burnt = self.rate(), self.pool, self.burnt()
        yield
        if self.pool != pool or self.rate() != rate:
            self.pool -= burnt
            self.metered += burnt
            self.since = self.now

    def depletes_at(self) -> datetime | str | None:
        """When the pool's available balance reaches zero at the current rate, to the second."""
        rate = self.rate()
        if rate == 0:
            return None
        microseconds = -(-self.pool * MICROSECONDS_A_YEAR // rate)  # the least that burns it
        try:
            instant = self.since + timedelta(microseconds=microseconds)
        except OverflowError:
            return BEYOND_THE_CALENDAR
        if instant.microsecond:
            instant = instant.replace(microsecond=0) + timedelta(seconds=1)
        return BEYOND_THE_CALENDAR if instant.year >= LAST_CALENDAR_YEAR else instant

    # Members and holds

    def is_open(self, hold: HoldModel) -> bool:
        return hold.status is HoldStatus.PENDING and hold.expires_at > self.now

    def held(self, member_id: str) -> int:
        return sum(
            h.amount for h in self.holds.values() if h.member_id == member_id and self.is_open(h)
        )

    def spendable(self, member_id: str) -> int:
        return self.members[member_id].wallet - self.held(member_id)

    def students(self) -> list[str]:
        return [i for i, m in self.members.items() if m.active and m.role is Role.MEMBER]

    def in_group(self, group_id: str) -> list[str]:
        return [i for i in self.groups[group_id] if self.members[i].active]

    def owner(self) -> str:
        (owner,) = [i for i, m in self.members.items() if m.role is Role.OWNER]
        return owner

    def spend_refusal(
        self, member_id: str, amount: int
    ) -> tuple[type[CreditpoolError] | None, int]:
        """The refusal of usage or a hold of `amount`, or None and the automatic top-up first."""
        if self.paused:
            return OrgPaused, 0
        member = self.members[member_id]
        if not member.active:
            return MemberRemoved, 0
        short = amount - self.spendable(member_id)
        if short <= 0:
            return None, 0
        if not self.auto_enabled:
            return InsufficientCredits, 0
        top_up = -(-short // self.bundle) * self.bundle
        if self.received(member) + top_up > self.cap or top_up > self.pool_available():
            return InsufficientCredits, 0
        return None, top_up

    def top_up(self, member_id: str, amount: int) -> None:
        if amount == 0:
            return
        member = self.members[member_id]
        with self.change():
            self.pool -= amount
            member.wallet += amount
            member.allocated += amount
            member.auto_allocated += amount
            if self.period is not None:
                member.auto_period += amount

    def charge(self, member_id: str, amount: int, metrics: dict[str, int] | None) -> None:
        member = self.members[member_id]
        member.wallet -= amount
        member.used += amount
        self.used += amount
        for name, value in (metrics or {}).items():
            member.usage[name] = member.usage.get(name, 0) + value

    def received(self, member: MemberModel) -> int:
        """What counts toward the cap: received automatically this period, or ever."""
        return member.auto_allocated if self.period is None else member.auto_period

    # Periods

    def set_period(self, period: Period | None, timezone: str) -> None:
        """A new period or time zone counts afresh from the period containing now."""
        if (period, timezone) == (self.period, self.timezone):
            return
        self.period, self.timezone = period, timezone
        self.period_ends_at = None if period is None else period_end(period, timezone, self.now)
        self.restart_counters()

    def restart_counters(self) -> None:
        for member in self.members.values():  # removed ones too
            member.auto_period, member.period_base = 0, member.used

    def settle_period(self) -> int:
        """Settle a passed boundary, once however many passed: reclaim, then count afresh.

        Each active member gives back min(spendable, max(0, auto_period - period's usage)):
        a period's usage spends its automatic credits first; manual allotments stay.
        """
        if self.period is None or self.period_ends_at is None or self.period_ends_at > self.now:
            return 0
        taken: dict[str, int] = {}
        if self.reclaim and self.returnable:
            for member_id, member in self.members.items():
                if member.active and member.auto_period > 0:
                    unused = max(0, member.auto_period - (member.used - member.period_base))
                    if min(self.spendable(member_id), unused) > 0:
                        taken[member_id] = min(self.spendable(member_id), unused)
        with self.change():
            for member_id, amount in taken.items():
                self.members[member_id].wallet -= amount
                self.pool += amount
        self.restart_counters()
        self.period_ends_at = period_end(self.period, self.timezone, self.now)
        return sum(taken.values())

    def remove(self, member_ids: list[str]) -> int:
        """Remove active members: close their holds, return their wallets when returnable."""
        returned = 0
        with self.change():
            for member_id in member_ids:
                member = self.members[member_id]
                for hold in self.holds.values():
                    if hold.member_id == member_id and hold.status is HoldStatus.PENDING:
                        live = hold.expires_at > self.now
                        hold.status = HoldStatus.VOIDED if live else HoldStatus.EXPIRED
                member.active = False
                if self.returnable:
                    returned += member.wallet
                    member.wallet = 0
            self.pool += returned
        return returned

    # What the services must report

    def balance_figures(self) -> dict[str, Any]:
        rate, burnt = self.rate(), self.burnt()
        return {
            "available": self.pool - burnt,
            "allocated": sum(m.wallet for m in self.members.values()),
            "purchased": self.purchased,
            "used": self.used,
            "metered": self.metered + burnt,
            "burn_rate_per_year": rate,
            "burn_rate_per_day": round(Fraction(rate, 365)),  # no ties: 2 x rate is never odd
            "depletes_at": self.depletes_at(),
        }

    def member_figures(self, member_id: str) -> dict[str, Any]:
        member = self.members[member_id]
        held = self.held(member_id)
        return {
            "role": member.role,
            "seat": member.seat,
            "status": MemberStatus.ACTIVE if member.active else MemberStatus.REMOVED,
            "credits_available": member.wallet - held,
            "credits_held": held,
            "credits_balance": member.wallet,
            "credits_allocated": member.allocated,
            "credits_used": member.used,
            "auto_allocated": member.auto_allocated,
            "auto_allocated_this_period": self.received(member),
            "period_ends_at": self.period_ends_at,
            "usage": member.usage,
            "groups": sorted(g for g, ids in self.groups.items() if member_id in ids),
            "access": self.access(member) == "ok",
            "access_reason": self.access(member),
        }

    def access(self, member: MemberModel) -> str:
        """Whether the pool pays for the member's seat now: the first reason that holds."""
        if not member.active:
            return "removed"
        if member.seat is not Seat.LICENSED:
            return str(member.seat)  # external or unlicensed
        if self.paused:
            return "paused"
        if self.rates[Seat.LICENSED] > 0 and self.pool_available() <= 0:
            return "no_credits"
        return "ok"

    def settings(self) -> OrgSettings:
        return OrgSettings(
            returnable=self.returnable,
            auto_allocation=AutoAllocation(
                self.auto_enabled, self.bundle, self.cap, self.period, self.reclaim
            ),
            seat_rates=SeatRates(
                self.rates[Seat.LICENSED], self.rates[Seat.UNLICENSED], self.rates[Seat.EXTERNAL]
            ),
            timezone=self.timezone,
        )

    def org_usage(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for member in self.members.values():
            for name, value in member.usage.items():
                totals[name] = totals.get(name, 0) + value
        return totals


def reported_balance(uow: UnitOfWork, org_id: str) -> dict[str, Any]:
    balance = reports.get_balance(uow, org_id)
    return {
        "available": balance.available,
        "allocated": balance.allocated,
        "purchased": balance.purchased,
        "used": balance.used,
        "metered": balance.metered,
        "burn_rate_per_year": balance.burn_rate_per_year,
        "burn_rate_per_day": balance.burn_rate_per_day,
        "depletes_at": (
            BEYOND_THE_CALENDAR
            if balance.depletes_at and balance.depletes_at.year == LAST_CALENDAR_YEAR
            else balance.depletes_at
        ),
    }


def reported_member(view: MemberView) -> dict[str, Any]:
    return {
        "role": view.role,
        "seat": view.seat,
        "status": view.status,
        "credits_available": view.credits_available,
        "credits_held": view.credits_held,
        "credits_balance": view.credits_balance,
        "credits_allocated": view.credits_allocated,
        "credits_used": view.credits_used,
        "auto_allocated": view.auto_allocated,
        "auto_allocated_this_period": view.auto_allocated_this_period,
        "period_ends_at": view.period_ends_at,
        "usage": view.usage,
        "groups": view.groups,
        "access": view.access,
        "access_reason": view.access_reason,
    }


# The machine


@contextmanager
def rolled_back_unit_of_work(engine: Engine, clock: FakeClock) -> Iterator[UnitOfWork]:
    """The `uow` fixture for one example: its commits are rolled back when the example ends.

    One transaction for a whole test would pile up every example's savepoints, and PostgreSQL
    keeps a lock per savepoint until the transaction ends (hundreds of examples while shrinking
    run out of `max_locks_per_transaction`); a transaction per example also keeps the audit to
    the example's own org.
    """
    connection = engine.connect()
    outer = connection.begin()
    factory = sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    try:
        yield UnitOfWork(factory, clock)
    finally:
        outer.rollback()
        connection.close()


class LedgerMachine(RuleBasedStateMachine):
    """Random operations on one fresh org, the real services against the model."""

    members = Bundle("members")
    holds = Bundle("holds")
    # Whom a batch is for: some members by id, every student, or a class.
    TARGETS = st.sampled_from(["all students", *GROUP_NAMES]) | st.lists(
        members, min_size=1, max_size=3, unique=True
    )

    def __init__(self, engine: Engine, clock: FakeClock) -> None:
        super().__init__()
        self.example = ExitStack()
        self.uow = self.example.enter_context(rolled_back_unit_of_work(engine, clock))
        self.clock = clock
        # Each example starts on the same day, so failures read the same however many ran.
        clock.current = START
        self.org_id = ""
        self.group_ids: dict[str, str] = {}
        self.model: OrgModel
        # The org's one child, once opened: its own pool, its owner its only member.
        self.child_id = ""
        self.child: OrgModel | None = None
        # The model before the rule's write settled a passed period boundary (None: none had).
        self.unsettled: dict[str, Any] | None = None

    def settle_first(self) -> None:
        """A write locks the org, which first settles a period boundary that has passed; a
        refused write rolls it back with everything else (see `attempt`)."""
        model = self.model
        due = model.period_ends_at is not None and model.period_ends_at <= model.now
        self.unsettled = deepcopy(vars(model), {id(self.clock): self.clock}) if due else None
        model.settle_period()

    def attempt(self, refusal: type[CreditpoolError] | None, call: Callable[[], T]) -> T | None:
        """Run a service call; when the model predicts a refusal, it must be exactly that one,
        and the model goes back to where it stood before the rule settled a period."""
        if refusal is None:
            return call()
        with pytest.raises(refusal) as raised:
            call()
        assert type(raised.value) is refusal, raised.value
        if self.unsettled is not None:
            vars(self.model).update(self.unsettled)
        return None

    @initialize(
        target=members,
        returnable=st.booleans(),
        auto=maybe(st.tuples(BUNDLES, st.integers(0, 4))),
        licensed=SEAT_RATES,
        unlicensed=SEAT_RATES,
        purchase=st.sampled_from(["25", "60", "10", "1", "0.000001"]),
        students=st.integers(0, 3),
        allotment=ALLOTMENTS,
        weekly=st.sampled_from([None, "reclaim", "keep"]),  # a weekly budget from the start
    )
    def open_org(
        self,
        returnable: bool,
        auto: tuple[str, int] | None,
        licensed: str,
        unlicensed: str,
        purchase: str,
        students: int,
        allotment: str,
        weekly: str | None,
    ) -> Any:
        bundle, bundles = auto or ("5", 0)
        period = None if weekly is None else Period.WEEK
        if weekly is not None:  # a budget of at least two bundles a week, given back or kept
            auto, bundles = (bundle, max(bundles, 2)), max(bundles, 2)
            returnable = returnable or weekly == "reclaim"
        change = SettingsChange(
            returnable=returnable,
            auto_enabled=auto is not None,
            auto_bundle=credits(bundle),
            auto_max_per_member=credits(bundle) * bundles,
            rate_licensed=credits(licensed),
            rate_unlicensed=credits(unlicensed),
            auto_period=period,
            period_set=True,
            auto_reclaim=weekly == "reclaim",
        )
        org = make_org(self.uow, settings=change)
        self.org_id = org.id
        (owner,) = member_service.list_members(self.uow, org.id)
        self.model = OrgModel(
            clock=self.clock,
            since=self.clock.now(),
            returnable=returnable,
            auto_enabled=auto is not None,
            bundle=credits(bundle),
            cap=credits(bundle) * bundles,
            rates={
                Seat.LICENSED: credits(licensed),
                Seat.UNLICENSED: credits(unlicensed),
                Seat.EXTERNAL: 0,
            },
            reclaim=weekly == "reclaim",
        )
        self.model.set_period(period, "UTC")
        self.model.members[owner.id] = MemberModel(owner.user_id, Role.OWNER, Seat.LICENSED)
        for name in GROUP_NAMES:
            group = group_service.create_group(self.uow, org.id, name, actor=OPERATOR)
            self.group_ids[name] = group.id
            self.model.groups[group.id] = set()
        self.purchase(purchase)
        added = add_members(self.uow, org.id, students)
        with self.model.change():
            for view in added:
                self.model.members[view.id] = MemberModel(view.user_id, Role.MEMBER, Seat.LICENSED)
        if weekly is None:  # with a weekly budget, the students' credits come automatically
            self.allocate("all students", allotment)
        return multiple(owner.id, *(view.id for view in added))

    # Purchases, allocations, revocations

    @rule(amount=PURCHASES)
    def purchase(self, amount: str) -> None:
        self.settle_first()
        micros = credits(amount)
        transfer = credit_service.record_purchase(self.uow, self.org_id, micros, actor=OPERATOR)
        assert transfer.amount == micros
        with self.model.change():
            self.model.pool += micros
            self.model.purchased += micros

    def resolve(self, to: str | list[str]) -> tuple[Target, list[str] | None]:
        """The target of a batch and the active members it reaches; None when it is NotFound."""
        model = self.model
        if to == "all students":
            return Target.all_students(), model.students()
        if isinstance(to, str):
            group_id = self.group_ids[to]
            return Target.group(group_id), model.in_group(group_id)
        return Target.members(to), self.active_or_none(to)

    def active_or_none(self, chosen: list[str]) -> list[str] | None:
        """The members named, or None when one of them is removed (the call is NotFound)."""
        return chosen if all(self.model.members[i].active for i in chosen) else None

    @rule(to=TARGETS, amount=ALLOTMENTS)
    def allocate(self, to: str | list[str], amount: str) -> None:
        self.settle_first()
        model, micros = self.model, credits(amount)
        target, chosen = self.resolve(to)
        refusal: type[CreditpoolError] | None = None
        if chosen is None:
            refusal = NotFound
        elif micros * len(chosen) > model.pool_available():
            refusal = InsufficientCredits
        result = self.attempt(
            refusal,
            lambda: credit_service.allocate_credits(
                self.uow, self.org_id, target, micros, actor=OPERATOR
            ),
        )
        if result is None:
            return
        assert chosen is not None
        assert result.total == micros * len(chosen)
        assert sorted(view.id for view in result.members) == sorted(chosen)
        with model.change():
            model.pool -= micros * len(chosen)
            for member_id in chosen:
                model.members[member_id].wallet += micros
                model.members[member_id].allocated += micros

    @rule(to=TARGETS, amount=maybe(ALLOTMENTS))
    def revoke(self, to: str | list[str], amount: str | None) -> None:
        self.settle_first()
        model = self.model
        micros = None if amount is None else credits(amount)
        target, chosen = self.resolve(to)
        refusal: type[CreditpoolError] | None = None
        if not model.returnable:
            refusal = NotReturnable
        elif chosen is None:
            refusal = NotFound
        elif micros is not None and any(model.spendable(i) < micros for i in chosen):
            refusal = InsufficientCredits
        result = self.attempt(
            refusal,
            lambda: credit_service.revoke_credits(
                self.uow, self.org_id, target, micros, actor=OPERATOR
            ),
        )
        if result is None:
            return
        assert chosen is not None
        taken = {i: model.spendable(i) if micros is None else micros for i in chosen}
        assert result.total == sum(taken.values())
        with model.change():
            model.pool += sum(taken.values())
            for member_id, value in taken.items():
                model.members[member_id].wallet -= value

    @rule(group=st.sampled_from(GROUP_NAMES), chosen=st.lists(members, unique=True))
    def set_group(self, group: str, chosen: list[str]) -> None:
        self.settle_first()
        group_id = self.group_ids[group]
        refusal = None if self.active_or_none(chosen) is not None else NotFound
        view = self.attempt(
            refusal,
            lambda: group_service.set_group_members(self.uow, self.org_id, group_id, chosen),
        )
        if view is not None:
            assert view.member_count == len(chosen)
            # Removed members keep their place, for when they come back.
            kept = {i for i in self.model.groups[group_id] if not self.model.members[i].active}
            self.model.groups[group_id] = set(chosen) | kept

    # Usage and holds

    @rule(member=members, amount=CHARGES, metrics=METRICS)
    def charge_usage(self, member: str, amount: str, metrics: dict[str, int] | None) -> None:
        self.settle_first()
        model, micros = self.model, credits(amount)
        refusal, top_up = model.spend_refusal(member, micros)
        result = self.attempt(
            refusal,
            lambda: usage.charge_usage(
                self.uow, self.org_id, member, micros, metrics=metrics, actor=USAGE_KEY
            ),
        )
        if result is None:
            return
        assert (result.transfer.amount, result.auto_allocated) == (micros, top_up)
        model.top_up(member, top_up)
        model.charge(member, micros, metrics)

    @rule(target=holds, member=members, amount=CHARGES, seconds=HOLD_SECONDS)
    def place_hold(self, member: str, amount: str, seconds: int) -> Any:
        self.settle_first()
        model, micros = self.model, credits(amount)
        refusal, top_up = model.spend_refusal(member, micros)
        hold = self.attempt(
            refusal,
            lambda: hold_service.place_hold(
                self.uow, self.org_id, member, micros, expires_in=seconds, actor=USAGE_KEY
            ),
        )
        if hold is None:
            return multiple()
        expires_at = model.now + timedelta(seconds=seconds)
        assert (hold.amount, hold.status, hold.expires_at) == (
            micros,
            HoldStatus.PENDING,
            expires_at,
        )
        model.top_up(member, top_up)
        model.holds[hold.id] = HoldModel(member, micros, expires_at)
        return hold.id

    @rule(hold=holds, amount=maybe(CHARGES), metrics=METRICS)
    def capture_hold(self, hold: str, amount: str | None, metrics: dict[str, int] | None) -> None:
        self.settle_first()
        model, reserve = self.model, self.model.holds[hold]
        micros = reserve.amount if amount is None else credits(amount)
        refusal = None
        if not model.is_open(reserve) or micros > reserve.amount:
            refusal = InsufficientCredits
        result = self.attempt(
            refusal,
            lambda: hold_service.capture_hold(
                self.uow, self.org_id, hold, micros, metrics=metrics, actor=USAGE_KEY
            ),
        )
        if result is None:
            return
        assert result.transfer.amount == micros
        model.charge(reserve.member_id, micros, metrics)
        reserve.status = HoldStatus.CAPTURED

    @rule(hold=holds)
    def void_hold(self, hold: str) -> None:
        self.settle_first()
        model, reserve = self.model, self.model.holds[hold]
        if reserve.status is HoldStatus.PENDING:
            reserve.status = HoldStatus.VOIDED if model.is_open(reserve) else HoldStatus.EXPIRED
        view = hold_service.void_hold(self.uow, self.org_id, hold, actor=USAGE_KEY)
        assert view.status == reserve.status

    # Members: joining, seats, roles, leaving, coming back

    @precondition(lambda self: len(self.model.members) < MAX_MEMBERS)
    @rule(target=members, role=st.sampled_from([Role.MEMBER, Role.MANAGER]), seat=SEATS)
    def add_member(self, role: Role, seat: Seat) -> str:
        self.settle_first()
        user = make_user(self.uow)
        view = member_service.add_member(
            self.uow, self.org_id, user_id=user.id, role=role, seat=seat, actor=OPERATOR
        )
        with self.model.change():
            self.model.members[view.id] = MemberModel(user.id, role, seat)
        return view.id

    @rule(member=members, seat=SEATS)
    def rejoin(self, member: str, seat: Seat) -> None:
        self.settle_first()
        joining = self.model.members[member]
        view = self.attempt(
            AlreadyMember if joining.active else None,
            lambda: member_service.add_member(
                self.uow, self.org_id, user_id=joining.user_id, seat=seat, actor=OPERATOR
            ),
        )
        if view is None:
            return
        assert view.id == member
        with self.model.change():
            joining.active, joining.role, joining.seat = True, Role.MEMBER, seat

    @rule(member=members, seat=SEATS)
    def change_seat(self, member: str, seat: Seat) -> None:
        self.settle_first()
        changing = self.model.members[member]
        view = self.attempt(
            None if changing.active else MemberRemoved,
            lambda: member_service.change_member(
                self.uow, self.org_id, member, seat=seat, actor=OPERATOR
            ),
        )
        if view is None:
            return
        with self.model.change():
            changing.seat = seat

    @rule(member=members, role=st.sampled_from([Role.MEMBER, Role.MANAGER, Role.OWNER]))
    def change_role(self, member: str, role: Role) -> None:
        self.settle_first()
        model, changing = self.model, self.model.members[member]
        refusal: type[CreditpoolError] | None = None
        if not changing.active:
            refusal = MemberRemoved
        elif changing.role is Role.OWNER and role is not Role.OWNER:
            refusal = OwnerRequired
        view = self.attempt(
            refusal,
            lambda: member_service.change_member(
                self.uow, self.org_id, member, role=role, actor=OPERATOR
            ),
        )
        if view is None:
            return
        if role is Role.OWNER and changing.role is not Role.OWNER:
            model.members[model.owner()].role = Role.MANAGER  # the org is handed over
        changing.role = role

    @rule(member=members)
    def remove_member(self, member: str) -> None:
        self.settle_first()
        leaving = self.model.members[member]
        view = self.attempt(
            OwnerRequired if leaving.role is Role.OWNER else None,
            lambda: member_service.remove_member(self.uow, self.org_id, member, actor=OPERATOR),
        )
        if view is None:
            return
        assert view.status is MemberStatus.REMOVED
        if leaving.active:
            self.model.remove([member])

    @rule(preview=st.booleans())
    def reset(self, preview: bool) -> None:
        def expected() -> tuple[int, int]:
            students = self.model.students()
            returning = sum(self.model.members[i].wallet for i in students)
            return len(students), returning if self.model.returnable else 0

        if preview:  # a read: it settles no period, the reset does
            shown = resets.preview_reset(self.uow, self.org_id)
            assert (shown.removed, shown.revoked) == expected()
        self.settle_first()
        students = self.model.students()
        result = resets.reset_org(self.uow, self.org_id, actor=OPERATOR)
        assert (result.removed, result.revoked) == expected()
        self.model.remove(students)

    # The org: pause, settings, time

    @rule(paused=st.booleans())
    def set_paused(self, paused: bool) -> None:
        self.settle_first()
        view = org_service.set_paused(self.uow, self.org_id, paused=paused, actor=OPERATOR)
        assert view.paused is paused
        with self.model.change(), self.child_change():
            self.model.paused = paused
            if self.child is not None:  # the pause flows down: the child's seats stop too
                self.child.ancestor_paused = paused

    @rule(
        returnable=maybe(st.booleans()),
        auto_enabled=maybe(st.booleans()),
        bundle=maybe(BUNDLES),
        cap=maybe(CAPS),
        licensed=maybe(SEAT_RATES),
        unlicensed=maybe(SEAT_RATES),
        external=maybe(SEAT_RATES),
    )
    def change_settings(
        self,
        returnable: bool | None,
        auto_enabled: bool | None,
        bundle: str | None,
        cap: str | None,
        licensed: str | None,
        unlicensed: str | None,
        external: str | None,
    ) -> None:
        model = self.model
        self.settle_first()

        def micros(text: str | None) -> int | None:
            return None if text is None else credits(text)

        change = SettingsChange(
            returnable=returnable,
            auto_enabled=auto_enabled,
            auto_bundle=micros(bundle),
            auto_max_per_member=micros(cap),
            rate_licensed=micros(licensed),
            rate_unlicensed=micros(unlicensed),
            rate_external=micros(external),
        )
        new_bundle = model.bundle if bundle is None else credits(bundle)
        new_cap = model.cap if cap is None else credits(cap)
        refusal = None if new_cap % new_bundle == 0 else InvalidPolicy
        chosen = self.attempt(
            refusal,
            lambda: org_service.update_settings(self.uow, self.org_id, change, actor=OPERATOR),
        )
        if chosen is None:
            return
        with model.change():
            model.returnable = model.returnable if returnable is None else returnable
            model.auto_enabled = model.auto_enabled if auto_enabled is None else auto_enabled
            model.bundle, model.cap = new_bundle, new_cap
            for seat, rate in (
                (Seat.LICENSED, licensed),
                (Seat.UNLICENSED, unlicensed),
                (Seat.EXTERNAL, external),
            ):
                if rate is not None:
                    model.rates[seat] = credits(rate)
        assert chosen == model.settings()

    @rule(unit=CLOCK_UNITS, count=st.integers(1, 30))
    def wait(self, unit: str, count: int) -> None:
        self.clock.advance(**{unit: count})

    # Budgets per period

    @rule(period=PERIODS, reclaim=st.booleans(), timezone=TIMEZONES, bundles=st.integers(1, 4))
    def set_budget(self, period: Period | None, reclaim: bool, timezone: str, bundles: int) -> None:
        """So many bundles a member may receive automatically each period (or ever)."""
        model = self.model
        self.settle_first()  # under the old settings
        change = SettingsChange(
            auto_enabled=True,
            auto_max_per_member=model.bundle * bundles,
            auto_period=period,
            period_set=True,
            auto_reclaim=reclaim,
            timezone=timezone,
        )
        chosen = org_service.update_settings(self.uow, self.org_id, change, actor=OPERATOR)
        model.auto_enabled, model.cap, model.reclaim = True, model.bundle * bundles, reclaim
        model.set_period(period, timezone)
        assert chosen == model.settings()

    @precondition(lambda self: self.model.period_ends_at is not None)
    @rule(past=PAST_THE_BOUNDARY)
    def cross_boundary(self, past: timedelta) -> None:
        ends_at = self.model.period_ends_at
        assert ends_at is not None
        self.clock.current = max(self.clock.current, ends_at + past)

    # The family: a child org and credits moving between the two pools

    def child_change(self) -> AbstractContextManager[None]:
        """The child's `change()`, or nothing before it is opened."""
        return nullcontext() if self.child is None else self.child.change()

    @precondition(lambda self: self.child is None)
    @rule(returnable=st.booleans(), licensed=SEAT_RATES)
    def open_child(self, returnable: bool, licensed: str) -> None:
        self.settle_first()
        owner = make_user(self.uow)
        view = families.create_child(
            self.uow,
            self.org_id,
            name="Child class",
            owner_user_id=owner.id,
            settings=SettingsChange(returnable=returnable, rate_licensed=credits(licensed)),
            actor=OPERATOR,
        )
        assert view.parent_id == self.org_id
        self.child_id = view.id
        self.child = OrgModel(
            clock=self.clock,
            since=self.clock.now(),
            returnable=returnable,
            auto_enabled=False,
            bundle=credits("5"),
            cap=0,
            rates={Seat.LICENSED: credits(licensed), Seat.UNLICENSED: 0, Seat.EXTERNAL: 0},
            ancestor_paused=self.model.paused,
        )
        self.child.members["owner"] = MemberModel(owner.id, Role.OWNER, Seat.LICENSED)

    @precondition(lambda self: self.child is not None)
    @rule(amount=PURCHASES)
    def allot_to_child(self, amount: str) -> None:
        self.settle_first()
        parent, child, micros = self.model, self.child, credits(amount)
        assert child is not None
        moved = self.attempt(
            InsufficientCredits if micros > parent.pool_available() else None,
            lambda: families.allot_to_child(
                self.uow, self.org_id, self.child_id, micros, actor=OPERATOR
            ),
        )
        if moved is None:  # all or nothing: the invariant sees both pools unchanged
            return
        with parent.change(), child.change():
            parent.pool -= micros
            child.pool += micros
        assert moved.amount == micros
        assert (moved.parent.available, moved.child.available) == (
            parent.pool_available(),
            child.pool_available(),
        )

    @precondition(lambda self: self.child is not None)
    @rule(amount=maybe(PURCHASES))
    def take_back_from_child(self, amount: str | None) -> None:
        self.settle_first()
        parent, child = self.model, self.child
        assert child is not None
        micros = child.pool_available() if amount is None else credits(amount)
        refusal: type[CreditpoolError] | None = None
        if not child.returnable:
            refusal = NotReturnable
        elif micros > child.pool_available():
            refusal = InsufficientCredits
        moved = self.attempt(
            refusal,
            lambda: families.take_back_from_child(
                self.uow,
                self.org_id,
                self.child_id,
                None if amount is None else micros,
                actor=OPERATOR,
            ),
        )
        if moved is None:
            return
        with parent.change(), child.change():
            parent.pool += micros
            child.pool -= micros
        assert moved.amount == micros
        assert (moved.parent.available, moved.child.available) == (
            parent.pool_available(),
            child.pool_available(),
        )

    @precondition(lambda self: self.child is not None)
    @rule(paused=st.booleans())
    def set_child_paused(self, paused: bool) -> None:
        child = self.child
        assert child is not None
        view = org_service.set_paused(self.uow, self.child_id, paused=paused, actor=OPERATOR)
        assert view.paused is paused
        with child.change():
            child.paused = paused

    # After every step

    @invariant()
    def books_match_the_model(self) -> None:
        model = self.model
        assert reported_balance(self.uow, self.org_id) == model.balance_figures()
        views = {
            view.id: view
            for view in member_service.list_members(
                self.uow, self.org_id, status=None, limit=MAX_MEMBERS + 10
            )
        }
        assert sorted(views) == sorted(model.members)
        for member_id, view in views.items():
            assert reported_member(view) == model.member_figures(member_id), member_id
        org = org_service.get_org(self.uow, self.org_id)
        assert (org.paused, org.settings, org.usage) == (
            model.paused,
            model.settings(),
            model.org_usage(),
        )
        if self.child is not None:
            self.family_matches_the_model(org.rollup)

    def family_matches_the_model(self, rollup: RollupView) -> None:
        """The child's balance, and the parent's roll-up over both orgs."""
        parent, child = self.model, self.child
        assert child is not None
        figures = child.balance_figures()
        assert reported_balance(self.uow, self.child_id) == figures
        own = parent.balance_figures()
        assert rollup == RollupView(
            orgs=2,
            members=len([m for m in parent.members.values() if m.active]) + 1,
            available=own["available"] + figures["available"],
            allocated=own["allocated"],
            used=own["used"],
            metered=own["metered"] + figures["metered"],
            usage=parent.org_usage(),
        )

    def teardown(self) -> None:
        try:
            # The whole database, which holds this example's org (and its child) only.
            report = audit(self.uow)
            assert report.clean, report.breaches
        finally:
            self.example.close()


LEDGER_SETTINGS = settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_the_ledger_matches_its_model(engine: Engine, clock: FakeClock) -> None:
    run_state_machine_as_test(lambda: LedgerMachine(engine, clock), settings=LEDGER_SETTINGS)


class WeeklyBudgetMachine(LedgerMachine):
    """The same machine and model, narrowed to a class with a weekly budget from its start.

    Only the rules that make a budget's figures move stay (allotments and revocations, usage
    and holds, members joining and leaving, the budget's settings, time), so that automatic
    top-ups, the boundaries after them and their reclaims come often in few examples.
    """

    @initialize(
        target=LedgerMachine.members,
        returnable=st.booleans(),
        bundle=BUNDLES,
        bundles=st.integers(2, 4),
        students=st.integers(1, 3),
        reclaim=st.booleans(),
        # A little allotted by hand too: usage spends the automatic credits first.
        allotment=st.sampled_from([None, "1", "0.5", "2.5"]),
    )
    def open_weekly_class(
        self,
        returnable: bool,
        bundle: str,
        bundles: int,
        students: int,
        reclaim: bool,
        allotment: str | None,
    ) -> Any:
        opened = LedgerMachine.open_org(
            self,
            returnable=returnable,
            auto=(bundle, bundles),
            licensed="0",
            unlicensed="0",
            purchase="60",
            students=students,
            allotment="5",
            weekly="reclaim" if reclaim else "keep",
        )
        if allotment is not None:
            self.allocate("all students", allotment)
        return opened

    # Not what a budget is about, or rare enough to leave to LedgerMachine (None hides them).
    open_org = set_group = rejoin = change_seat = change_role = set_paused = None
    change_settings = open_child = allot_to_child = take_back_from_child = None
    set_child_paused = reset = None


BUDGET_SETTINGS = settings(LEDGER_SETTINGS, max_examples=30, stateful_step_count=25)


def test_weekly_budgets_match_the_model(engine: Engine, clock: FakeClock) -> None:
    run_state_machine_as_test(lambda: WeeklyBudgetMachine(engine, clock), settings=BUDGET_SETTINGS)
