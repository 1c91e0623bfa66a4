"""Many charges at once (services/many_charges.py) against the same charges made one by one,
on each engine: two orgs set up alike, one charged together and one charge at a time, must
answer alike, charge for charge (refusals included), and end with the same books."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

import pytest

from creditpool.domain.amounts import credits
from creditpool.domain.errors import CreditpoolError
from creditpool.domain.policies import SettingsChange
from creditpool.services import audit, groups, holds, members, reports
from creditpool.services.credits import allocate_credits, record_purchase
from creditpool.services.many_charges import Charge, Charged, charge_many
from creditpool.services.targets import Target
from creditpool.services.transactions import run_write
from creditpool.services.usage import charge_usage
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.clock import FakeClock
from tests.support.factories import OPERATOR, add_members, make_org

KEY = "key:test"
# (member's number, amount, metrics): 0 and 1 hold 3 credits, 2 is removed, 3 holds nothing,
# number 9 is no member at all.
CHARGES: list[tuple[int, str, dict[str, int] | None]] = [
    (0, "1", {"renders": 1}),
    (1, "0.5", None),
    (9, "1", None),  # not found
    (2, "1", None),  # removed
    (0, "1.5", {"renders": 2, "frames": 24}),
    (3, "1", None),  # short: 0 available
    (0, "1", None),  # short now: 0.5 available
    (1, "2.5", {"frames": 10}),  # exactly what is left
    (0, "0.5", {"renders": 1}),  # fits again
    (1, "0.000001", None),  # short by a micro-credit
]


def _school(
    uow: UnitOfWork, *, auto: bool, expiring: datetime | None = None
) -> tuple[str, list[str]]:
    settings = SettingsChange(
        rate_licensed=credits("1"),
        auto_enabled=auto or None,
        auto_bundle=credits("5") if auto else None,
        auto_max_per_member=credits("5") if auto else None,
    )
    org = make_org(uow, purchase="100", settings=settings)
    if expiring is not None:
        # Lots spent first, lapsing two days apart: member 0 gets 3 of the first, member 1
        # the last 1 of it and 2 of the second (its hold keeps that 1 till the hold expires).
        record_purchase(uow, org.id, credits("4"), actor=OPERATOR, expires_at=expiring, priority=10)
        later = expiring + timedelta(days=2)
        record_purchase(uow, org.id, credits("6"), actor=OPERATOR, expires_at=later, priority=20)
    people = [member.id for member in add_members(uow, org.id, 4)]
    allocate_credits(uow, org.id, Target.members(people[:3]), credits("3"), actor=OPERATOR)
    members.remove_member(uow, org.id, people[2], actor=OPERATOR)
    group = groups.create_group(uow, org.id, "Evening class", actor=OPERATOR)
    groups.set_group_members(uow, org.id, group.id, people[:2])
    # A hold on member 1, expired by the time of the charges: spendable again.
    holds.place_hold(uow, org.id, people[1], credits("1"), expires_in=60, actor=KEY)
    return org.id, [*people, "mem_nobody"]


def _charges(people: list[str]) -> list[Charge]:
    number = {9: 4}
    return [
        Charge(people[number.get(who, who)], credits(amount), metrics, None, KEY)
        for who, amount, metrics in CHARGES
    ]


def _seen(outcome: Any) -> Any:
    """What an answer says, with the org's own ids taken out."""
    if isinstance(outcome, CreditpoolError):
        return (outcome.code, outcome.detail)
    member = {
        name: value
        for name, value in asdict(outcome.member).items()
        if name not in ("id", "org_id", "user_id", "email", "name", "groups", "joined_at")
    }
    return (outcome.transfer.amount, outcome.transfer.metrics, outcome.auto_allocated, member)


@pytest.mark.parametrize(
    ("auto", "lots"),
    [(False, False), (True, False), (False, True)],
    ids=["manual", "automatic allocation", "lots that expire"],
)
def test_charged_together_answers_and_books_as_one_by_one(
    uow: UnitOfWork, clock: FakeClock, auto: bool, lots: bool
) -> None:
    expiring = clock.now() + timedelta(days=3) if lots else None
    together, people_a = _school(uow, auto=auto, expiring=expiring)
    alone, people_b = _school(uow, auto=auto, expiring=expiring)
    clock.advance(minutes=5)
    if lots:
        # The worker's pass lets member 1's expired hold go: until then a single charge
        # spends around the lot it kept, where a batch lets it go first.
        holds.expire_holds(uow)

    outcomes = run_write(
        uow, lambda: charge_many(uow, together, _charges(people_a), with_members=True)
    )
    one_by_one: list[Any] = []
    for charge in _charges(people_b):
        try:
            one_by_one.append(
                charge_usage(
                    uow, alone, charge.member_id, charge.amount, metrics=charge.metrics, actor=KEY
                )
            )
        except CreditpoolError as refusal:
            one_by_one.append(refusal)

    assert [_seen(o) for o in outcomes] == [_seen(o) for o in one_by_one]
    transfer = next(o for o in outcomes if isinstance(o, Charged)).transfer
    codes = [o.code if isinstance(o, CreditpoolError) else "charged" for o in outcomes]
    assert codes.count("charged") == (8 if auto else 5)  # auto tops members 0, 1 and 3 up
    assert {"not_found", "member_removed"} <= set(codes)
    assert ("insufficient_credits" in codes) is not auto
    if expiring is not None:  # what each charge left lapsing soon, member 0's and 1's
        first, second = expiring, expiring + timedelta(days=2)
        soon = [
            [(view.at, view.amount) for view in outcome.member.credits_expiring]
            for outcome in outcomes
            if isinstance(outcome, Charged) and outcome.member is not None
        ]
        # Member 0: 3 of the first lot, less 1; member 1: the 1 of the first lot that its
        # expired hold let go is spent first.
        assert soon[:3] == [
            [(first, credits("2"))],
            [(first, credits("0.5")), (second, credits("2"))],
            [(first, credits("0.5"))],
        ]
    for a, b in zip(people_a[:4], people_b[:4], strict=True):
        after_a, after_b = members.get_member(uow, together, a), members.get_member(uow, alone, b)
        assert _seen(Charged(transfer, after_a)) == _seen(Charged(transfer, after_b))
    balance_a, balance_b = reports.get_balance(uow, together), reports.get_balance(uow, alone)
    assert (balance_a.used, balance_a.available) == (balance_b.used, balance_b.available)
    assert audit.audit(uow, together).clean


def test_nothing_to_charge_changes_nothing(uow: UnitOfWork, clock: FakeClock) -> None:
    org, _ = _school(uow, auto=False)
    before = reports.get_balance(uow, org)
    assert run_write(uow, lambda: charge_many(uow, org, [], with_members=False)) == []
    assert reports.get_balance(uow, org) == before


def test_amounts_past_32_bits_are_charged_whole(uow: UnitOfWork) -> None:
    org = make_org(uow, purchase="100000")
    people = [member.id for member in add_members(uow, org.id, 2)]
    allocate_credits(uow, org.id, Target.members(people), credits("5000"), actor=OPERATOR)
    big = credits("2500")  # 2.5 x 10^9 micro-credits: past a 32-bit integer
    charges = [Charge(member, big, {"frames": 2**40}, None, KEY) for member in people * 2]
    outcomes = run_write(uow, lambda: charge_many(uow, org.id, charges, with_members=False))
    assert all(isinstance(outcome, Charged) for outcome in outcomes)
    for member in people:
        view = members.get_member(uow, org.id, member)
        assert (view.credits_available, view.credits_used) == (0, 2 * big)
        assert view.usage == {"frames": 2**41}
    assert audit.audit(uow, org.id).clean
