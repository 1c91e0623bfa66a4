"""The ledger against a model: random operations, every figure predicted in plain integers.

Hypothesis drives one fresh org per example through the real services: purchases, allocations
and revocations (to some members, all students, a group), usage with metrics (automatic
allocation on in some runs), holds (placed, captured, voided, left to expire), seat and role
changes, members leaving and coming back, pauses, settings changes and resets, with the clock
stepped from seconds to months. A small model written here, integers of micro-credits in plain
dicts and dataclasses, predicts every figure and every refusal. After each step the org's
balance, each member's figures and the org's settings must equal the model's, and the audit
must find the books clean. A refused operation must change nothing, which the same comparison
shows.

The model meters seats by itself, as the README says (seat metering with no daily job): the
burn since the last change is min(pool, rate x elapsed microseconds / microseconds in a year),
rounded down; it is posted, and a new interval starts, just before anything changes the pool's
balance or the rate, and at no other time (posting splits the interval, which rounds down twice).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any, TypeVar

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
from creditpool.domain.model import HoldStatus, MemberStatus, Role, Seat
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
CLOCK_UNITS = st.sampled_from(["hours", "seconds", "minutes", "days", "weeks"])


def maybe(strategy: st.SearchStrategy[T]) -> st.SearchStrategy[T | None]:
    """None (keep the current value) or a value."""
    return st.none() | strategy


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
        if member.auto_allocated + top_up > self.cap or top_up > self.pool_available():
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

    def charge(self, member_id: str, amount: int, metrics: dict[str, int] | None) -> None:
        member = self.members[member_id]
        member.wallet -= amount
        member.used += amount
        self.used += amount
        for name, value in (metrics or {}).items():
            member.usage[name] = member.usage.get(name, 0) + value

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
            auto_allocation=AutoAllocation(self.auto_enabled, self.bundle, self.cap),
            seat_rates=SeatRates(
                self.rates[Seat.LICENSED], self.rates[Seat.UNLICENSED], self.rates[Seat.EXTERNAL]
            ),
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

    def attempt(self, refusal: type[CreditpoolError] | None, call: Callable[[], T]) -> T | None:
        """Run a service call; when the model predicts a refusal, it must be exactly that one."""
        if refusal is None:
            return call()
        with pytest.raises(refusal) as raised:
            call()
        assert type(raised.value) is refusal, raised.value
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
    ) -> Any:
        bundle, bundles = auto or ("5", 0)
        change = SettingsChange(
            returnable=returnable,
            auto_enabled=auto is not None,
            auto_bundle=credits(bundle),
            auto_max_per_member=credits(bundle) * bundles,
            rate_licensed=credits(licensed),
            rate_unlicensed=credits(unlicensed),
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
        )
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
        self.allocate("all students", allotment)
        return multiple(owner.id, *(view.id for view in added))

    # Purchases, allocations, revocations

    @rule(amount=PURCHASES)
    def purchase(self, amount: str) -> None:
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
        model, reserve = self.model, self.model.holds[hold]
        if reserve.status is HoldStatus.PENDING:
            reserve.status = HoldStatus.VOIDED if model.is_open(reserve) else HoldStatus.EXPIRED
        view = hold_service.void_hold(self.uow, self.org_id, hold, actor=USAGE_KEY)
        assert view.status == reserve.status

    # Members: joining, seats, roles, leaving, coming back

    @precondition(lambda self: len(self.model.members) < MAX_MEMBERS)
    @rule(target=members, role=st.sampled_from([Role.MEMBER, Role.MANAGER]), seat=SEATS)
    def add_member(self, role: Role, seat: Seat) -> str:
        user = make_user(self.uow)
        view = member_service.add_member(
            self.uow, self.org_id, user_id=user.id, role=role, seat=seat, actor=OPERATOR
        )
        with self.model.change():
            self.model.members[view.id] = MemberModel(user.id, role, seat)
        return view.id

    @rule(member=members, seat=SEATS)
    def rejoin(self, member: str, seat: Seat) -> None:
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
        students = self.model.students()
        returning = sum(self.model.members[i].wallet for i in students)
        expected = (len(students), returning if self.model.returnable else 0)
        if preview:
            shown = resets.preview_reset(self.uow, self.org_id)
            assert (shown.removed, shown.revoked) == expected
        result = resets.reset_org(self.uow, self.org_id, actor=OPERATOR)
        assert (result.removed, result.revoked) == expected
        self.model.remove(students)

    # The org: pause, settings, time

    @rule(paused=st.booleans())
    def set_paused(self, paused: bool) -> None:
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

    # The family: a child org and credits moving between the two pools

    def child_change(self) -> AbstractContextManager[None]:
        """The child's `change()`, or nothing before it is opened."""
        return nullcontext() if self.child is None else self.child.change()

    @precondition(lambda self: self.child is None)
    @rule(returnable=st.booleans(), licensed=SEAT_RATES)
    def open_child(self, returnable: bool, licensed: str) -> None:
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
        # The whole database, which holds this example's org (and its child) only.
        report = audit(self.uow)
        assert report.clean, report.breaches

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
        self.example.close()


LEDGER_SETTINGS = settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_the_ledger_matches_its_model(engine: Engine, clock: FakeClock) -> None:
    run_state_machine_as_test(lambda: LedgerMachine(engine, clock), settings=LEDGER_SETTINGS)
