"""Charging usage, automatic allocation and holds, on each engine.

Automatic allocation is checked against its exact rule (domain/policies.py): usage (or a
hold) of `amount` meeting `w < amount` available gets the least `k` bundles with
`w + k*bundle >= amount`, provided `auto_allocated + k*bundle <= max_per_member` and the pool
holds `k*bundle`; otherwise nothing moves. Every org here that allots automatically uses a bundle
of 5 and a cap of 20 credits per member.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from creditpool.domain.amounts import credits
from creditpool.domain.errors import (
    InsufficientCredits,
    InvalidInput,
    MemberRemoved,
    NotFound,
    OrgPaused,
)
from creditpool.domain.model import HoldStatus, TransferKind
from creditpool.domain.policies import SettingsChange
from creditpool.services import audit, holds, members, orgs, reports
from creditpool.services.credits import allocate_credits, revoke_credits
from creditpool.services.targets import Target
from creditpool.services.usage import charge_usage
from creditpool.services.views import MemberView, UsageResult
from creditpool.storage.schema import Account, Hold
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.clock import FakeClock
from tests.support.factories import OPERATOR, add_members, make_org

API_KEY = "usage-key:test"  # the actor of usage and holds: an org API key
AUTO = SettingsChange(
    auto_enabled=True, auto_bundle=credits("5"), auto_max_per_member=credits("20")
)


def member(uow: UnitOfWork, org_id: str, member_id: str) -> MemberView:
    return members.get_member(uow, org_id, member_id)


def pool(uow: UnitOfWork, org_id: str) -> int:
    return reports.get_balance(uow, org_id).available


def books(uow: UnitOfWork, org_id: str) -> tuple[object, ...]:
    """Return every figure a charge could change: pool, wallets, member totals, transfers."""
    balance = reports.get_balance(uow, org_id)
    figures = {
        m.id: (
            m.credits_balance,
            m.credits_held,
            m.credits_allocated,
            m.auto_allocated,
            m.credits_used,
            m.usage,
        )
        for m in members.list_members(uow, org_id, status=None, limit=500)
    }
    transfers = [t.id for t in reports.list_transfers(uow, org_id, limit=500)]
    return balance.available, balance.used, figures, transfers


def assert_books_clean(uow: UnitOfWork, org_id: str) -> None:
    report = audit.audit(uow, org_id)
    assert report.clean, report.breaches


def allot(uow: UnitOfWork, org_id: str, member_id: str, amount: str) -> None:
    allocate_credits(uow, org_id, Target.members([member_id]), credits(amount), actor=OPERATOR)


def charge(
    uow: UnitOfWork, org_id: str, member_id: str, amount: str, **kwargs: object
) -> UsageResult:
    return charge_usage(uow, org_id, member_id, credits(amount), actor=API_KEY, **kwargs)


# Usage


def test_usage_is_charged_to_the_wallet_and_its_metrics_summed(uow: UnitOfWork):
    org = make_org(uow, purchase="100")
    ada, bob = add_members(uow, org.id, 2)
    allot(uow, org.id, ada.id, "10")
    allot(uow, org.id, bob.id, "10")

    first = charge(uow, org.id, ada.id, "2", metrics={"renders": 1, "frames": 240})
    charge(uow, org.id, ada.id, "1.5", metrics={"renders": 1, "frames": 100})
    charge(uow, org.id, bob.id, "1", metrics={"renders": 2}, reference="job-7")

    assert (first.transfer.kind, first.transfer.debit_account, first.transfer.credit_account) == (
        TransferKind.USAGE,
        f"wallet:{ada.id}",
        "usage",
    )
    assert first.transfer.metrics == {"renders": 1, "frames": 240}
    assert first.auto_allocated == 0
    after_ada = member(uow, org.id, ada.id)
    assert after_ada.usage == {"renders": 2, "frames": 340}
    assert (after_ada.credits_used, after_ada.credits_available) == (
        credits("3.5"),
        credits("6.5"),
    )
    assert member(uow, org.id, bob.id).usage == {"renders": 2}
    assert orgs.get_org(uow, org.id).usage == {"renders": 4, "frames": 340}
    balance = reports.get_balance(uow, org.id)
    assert (balance.used, balance.allocated) == (credits("4.5"), credits("15.5"))
    [bobs] = reports.list_transfers(uow, org.id, member_id=bob.id, kind=TransferKind.USAGE)
    assert bobs.reference == "job-7"
    assert_books_clean(uow, org.id)


def test_usage_is_refused_while_the_org_is_paused(uow: UnitOfWork):
    org = make_org(uow, purchase="100")
    (ada,) = add_members(uow, org.id, 1)
    allot(uow, org.id, ada.id, "10")
    orgs.set_paused(uow, org.id, paused=True, actor=OPERATOR)
    before = books(uow, org.id)

    with pytest.raises(OrgPaused):
        charge(uow, org.id, ada.id, "1", metrics={"renders": 1})

    assert books(uow, org.id) == before
    orgs.set_paused(uow, org.id, paused=False, actor=OPERATOR)
    assert charge(uow, org.id, ada.id, "1").member.credits_available == credits("9")


def test_usage_is_refused_for_a_removed_member(uow: UnitOfWork):
    org = make_org(uow, purchase="100", settings=SettingsChange(returnable=False))
    (ada,) = add_members(uow, org.id, 1)
    allot(uow, org.id, ada.id, "10")
    members.remove_member(uow, org.id, ada.id, actor=OPERATOR)  # its 10 stay on it
    before = books(uow, org.id)

    with pytest.raises(MemberRemoved):
        charge(uow, org.id, ada.id, "1")

    assert books(uow, org.id) == before


def test_usage_for_an_unknown_member_is_not_found(uow: UnitOfWork):
    org = make_org(uow, purchase="100")

    with pytest.raises(NotFound):
        charge(uow, org.id, "mem_does_not_exist", "1")


def test_usage_the_wallet_cannot_pay_moves_nothing(uow: UnitOfWork):
    org = make_org(uow, purchase="100")
    (ada,) = add_members(uow, org.id, 1)
    allot(uow, org.id, ada.id, "3")
    before = books(uow, org.id)

    with pytest.raises(InsufficientCredits):
        charge(uow, org.id, ada.id, "3.000001", metrics={"renders": 1})

    assert books(uow, org.id) == before
    assert orgs.get_org(uow, org.id).usage == {}
    # Exactly what it has is fine.
    assert charge(uow, org.id, ada.id, "3").member.credits_available == 0


@pytest.mark.parametrize(
    "metrics",
    [
        {"renders": -1},
        {"renders": 1.5},
        {"renders": True},
        {"renders": "3"},
        {"bad name!": 1},
        {"": 1},
        {"renders": 2**53 + 1},
        {f"m{i}": 1 for i in range(21)},
    ],
    ids=["negative", "float", "bool", "text", "bad name", "empty name", "too big", "21 metrics"],
)
def test_bad_metrics_are_refused_before_anything_moves(uow: UnitOfWork, metrics: dict):
    org = make_org(uow, purchase="100")
    (ada,) = add_members(uow, org.id, 1)
    allot(uow, org.id, ada.id, "10")
    before = books(uow, org.id)

    with pytest.raises(InvalidInput) as refused:
        charge(uow, org.id, ada.id, "1", metrics=metrics)

    assert refused.value.code == "validation_error"
    assert books(uow, org.id) == before


# Automatic allocation


@pytest.mark.parametrize(
    ("by_hand", "amount", "top_up"),
    [
        (None, "7", "10"),  # 0 + 2 x 5 >= 7; one bundle (5) would not do
        (None, "10", "10"),  # exactly two bundles
        (None, "0.000001", "5"),  # the smallest charge still takes a whole bundle
        ("3", "7", "5"),  # 3 + 5 >= 7: what the wallet has counts
        ("7", "7", "0"),  # enough already: no bundle
    ],
)
def test_usage_tops_the_wallet_up_by_the_fewest_bundles(
    uow: UnitOfWork, by_hand: str | None, amount: str, top_up: str
):
    org = make_org(uow, purchase="100", settings=AUTO)
    (ada,) = add_members(uow, org.id, 1)
    manual = credits(by_hand) if by_hand else 0
    if by_hand:
        allot(uow, org.id, ada.id, by_hand)

    result = charge(uow, org.id, ada.id, amount)

    assert result.auto_allocated == credits(top_up)
    after = result.member
    assert after.auto_allocated == credits(top_up)  # manual allotment is not counted here
    assert after.credits_allocated == manual + credits(top_up)
    assert after.credits_available == manual + credits(top_up) - credits(amount)
    assert pool(uow, org.id) == credits("100") - manual - credits(top_up)
    batch = [
        (t.kind, t.amount)
        for t in reports.list_transfers(uow, org.id, member_id=ada.id)
        if t.batch_id == result.transfer.batch_id
    ]
    expected = [(TransferKind.USAGE, credits(amount))]
    if top_up != "0":
        expected.append((TransferKind.AUTO_ALLOCATION, credits(top_up)))
    assert batch == expected  # the top-up and the charge are one batch, newest first
    assert_books_clean(uow, org.id)


def test_past_the_cap_usage_is_refused_and_nothing_moves(uow: UnitOfWork):
    org = make_org(uow, purchase="100", settings=AUTO)
    (ada,) = add_members(uow, org.id, 1)
    charge(uow, org.id, ada.id, "20")  # four bundles: the whole cap of 20
    before = books(uow, org.id)

    with pytest.raises(InsufficientCredits):
        charge(uow, org.id, ada.id, "1")

    assert books(uow, org.id) == before
    assert member(uow, org.id, ada.id).auto_allocated == credits("20")


def test_a_top_up_that_would_pass_the_cap_is_refused_whole(uow: UnitOfWork):
    org = make_org(uow, purchase="100", settings=AUTO)
    (ada,) = add_members(uow, org.id, 1)
    charge(uow, org.id, ada.id, "15")  # three bundles, 15 of the 20 used up
    before = books(uow, org.id)

    # 6 needs two bundles: 15 + 10 > 20. One bundle would fit the cap but would not pay.
    with pytest.raises(InsufficientCredits):
        charge(uow, org.id, ada.id, "6")

    assert books(uow, org.id) == before
    assert charge(uow, org.id, ada.id, "5").auto_allocated == credits("5")  # 20: at the cap


def test_manual_allotment_does_not_count_toward_the_cap(uow: UnitOfWork):
    org = make_org(uow, purchase="100", settings=AUTO)
    (ada,) = add_members(uow, org.id, 1)
    allot(uow, org.id, ada.id, "30")  # more than the cap, by hand
    charge(uow, org.id, ada.id, "30")

    result = charge(uow, org.id, ada.id, "20")  # still four bundles to come

    assert result.auto_allocated == credits("20")
    assert (result.member.credits_allocated, result.member.auto_allocated) == (
        credits("50"),
        credits("20"),
    )
    assert_books_clean(uow, org.id)


def test_past_the_cap_manual_allotment_still_pays(uow: UnitOfWork):
    org = make_org(uow, purchase="100", settings=AUTO)
    (ada,) = add_members(uow, org.id, 1)
    charge(uow, org.id, ada.id, "20")
    allot(uow, org.id, ada.id, "4")

    result = charge(uow, org.id, ada.id, "4")

    assert result.auto_allocated == 0
    assert result.member.credits_available == 0


def test_revocation_and_removal_do_not_lower_auto_allocated(uow: UnitOfWork):
    org = make_org(uow, purchase="100", settings=AUTO)
    (ada,) = add_members(uow, org.id, 1)
    charge(uow, org.id, ada.id, "7")  # two bundles (10), 3 left

    revoke_credits(uow, org.id, Target.members([ada.id]), actor=OPERATOR)
    assert member(uow, org.id, ada.id).auto_allocated == credits("10")
    charge(uow, org.id, ada.id, "10")  # two more bundles: 20, the cap
    with pytest.raises(InsufficientCredits):
        charge(uow, org.id, ada.id, "1")

    removed = members.remove_member(uow, org.id, ada.id, actor=OPERATOR)
    assert (removed.auto_allocated, removed.credits_allocated) == (credits("20"), credits("20"))
    assert_books_clean(uow, org.id)


def test_lowering_the_cap_below_auto_allocated_only_stops_further_bundles(uow: UnitOfWork):
    org = make_org(uow, purchase="100", settings=AUTO)
    (ada,) = add_members(uow, org.id, 1)
    charge(uow, org.id, ada.id, "7")  # 10 allotted automatically, 3 left

    orgs.update_settings(
        uow, org.id, SettingsChange(auto_max_per_member=credits("5")), actor=OPERATOR
    )

    after = member(uow, org.id, ada.id)
    assert (after.auto_allocated, after.credits_available) == (credits("10"), credits("3"))
    assert charge(uow, org.id, ada.id, "3").auto_allocated == 0  # what it has, it spends
    before = books(uow, org.id)
    with pytest.raises(InsufficientCredits):
        charge(uow, org.id, ada.id, "1")
    assert books(uow, org.id) == before


def test_a_pool_too_small_for_the_bundle_refuses_the_top_up(uow: UnitOfWork):
    org = make_org(uow, purchase="4.999999", settings=AUTO)
    (ada,) = add_members(uow, org.id, 1)
    before = books(uow, org.id)

    with pytest.raises(InsufficientCredits):
        charge(uow, org.id, ada.id, "1")

    assert books(uow, org.id) == before
    assert pool(uow, org.id) == credits("4.999999")


# Holds


def test_a_hold_keeps_credits_in_the_wallet_but_not_available(uow: UnitOfWork, clock: FakeClock):
    org = make_org(uow, purchase="100")
    (ada,) = add_members(uow, org.id, 1)
    allot(uow, org.id, ada.id, "10")

    hold = holds.place_hold(uow, org.id, ada.id, credits("4"), reference="render-1", actor=API_KEY)

    assert (hold.status, hold.amount, hold.member_id, hold.reference) == (
        HoldStatus.PENDING,
        credits("4"),
        ada.id,
        "render-1",
    )
    assert hold.expires_at == clock.now() + timedelta(seconds=3600)  # the default hour
    after = member(uow, org.id, ada.id)
    assert (after.credits_balance, after.credits_held, after.credits_available) == (
        credits("10"),
        credits("4"),
        credits("6"),
    )
    with pytest.raises(InsufficientCredits):
        charge(uow, org.id, ada.id, "6.000001")
    assert charge(uow, org.id, ada.id, "6").member.credits_balance == credits("4")
    assert_books_clean(uow, org.id)


def test_a_hold_the_wallet_cannot_cover_is_refused(uow: UnitOfWork):
    org = make_org(uow, purchase="100")
    (ada,) = add_members(uow, org.id, 1)
    allot(uow, org.id, ada.id, "10")
    holds.place_hold(uow, org.id, ada.id, credits("6"), actor=API_KEY)
    before = books(uow, org.id)

    with pytest.raises(InsufficientCredits):
        holds.place_hold(uow, org.id, ada.id, credits("5"), actor=API_KEY)

    assert books(uow, org.id) == before


def test_holds_are_refused_while_paused_and_for_removed_members(uow: UnitOfWork):
    org = make_org(uow, purchase="100", settings=SettingsChange(returnable=False))
    ada, bob = add_members(uow, org.id, 2)
    allot(uow, org.id, ada.id, "10")
    allot(uow, org.id, bob.id, "10")
    members.remove_member(uow, org.id, bob.id, actor=OPERATOR)

    with pytest.raises(MemberRemoved):
        holds.place_hold(uow, org.id, bob.id, credits("1"), actor=API_KEY)
    orgs.set_paused(uow, org.id, paused=True, actor=OPERATOR)
    before = books(uow, org.id)
    with pytest.raises(OrgPaused):
        holds.place_hold(uow, org.id, ada.id, credits("1"), actor=API_KEY)

    assert books(uow, org.id) == before


def test_a_hold_tops_the_wallet_up_under_automatic_allocation(uow: UnitOfWork):
    org = make_org(uow, purchase="100", settings=AUTO)
    (ada,) = add_members(uow, org.id, 1)

    holds.place_hold(uow, org.id, ada.id, credits("7"), actor=API_KEY)

    after = member(uow, org.id, ada.id)
    assert after.auto_allocated == credits("10")  # two bundles
    assert (after.credits_balance, after.credits_held, after.credits_available) == (
        credits("10"),
        credits("7"),
        credits("3"),
    )
    assert pool(uow, org.id) == credits("90")
    assert_books_clean(uow, org.id)


def test_capture_charges_up_to_the_reserve_and_releases_the_rest(uow: UnitOfWork):
    org = make_org(uow, purchase="100")
    (ada,) = add_members(uow, org.id, 1)
    allot(uow, org.id, ada.id, "10")
    hold = holds.place_hold(uow, org.id, ada.id, credits("6"), reference="job", actor=API_KEY)

    result = holds.capture_hold(
        uow, org.id, hold.id, credits("4"), metrics={"frames": 96}, actor=API_KEY
    )

    assert (result.transfer.kind, result.transfer.amount, result.transfer.hold_id) == (
        TransferKind.USAGE,
        credits("4"),
        hold.id,
    )
    assert result.transfer.reference == "job"
    after = result.member
    assert (after.credits_balance, after.credits_held, after.credits_available) == (
        credits("6"),  # 10 - 4 captured
        0,  # the other 2 reserved are released
        credits("6"),
    )
    assert (after.credits_used, after.usage) == (credits("4"), {"frames": 96})
    closed = holds.get_hold(uow, org.id, hold.id)
    assert (closed.status, closed.captured) == (HoldStatus.CAPTURED, credits("4"))
    assert reports.get_balance(uow, org.id).used == credits("4")
    assert_books_clean(uow, org.id)


def test_capturing_more_than_the_reserve_is_refused(uow: UnitOfWork):
    org = make_org(uow, purchase="100")
    (ada,) = add_members(uow, org.id, 1)
    allot(uow, org.id, ada.id, "10")
    hold = holds.place_hold(uow, org.id, ada.id, credits("6"), actor=API_KEY)
    before = books(uow, org.id)

    # The wallet could pay 6.000001, but the hold reserved only 6.
    with pytest.raises(InsufficientCredits):
        holds.capture_hold(uow, org.id, hold.id, credits("6.000001"), actor=API_KEY)

    assert books(uow, org.id) == before
    assert holds.get_hold(uow, org.id, hold.id).status is HoldStatus.PENDING
    holds.capture_hold(uow, org.id, hold.id, credits("6"), actor=API_KEY)
    assert member(uow, org.id, ada.id).credits_balance == credits("4")


def test_a_closed_hold_cannot_be_captured(uow: UnitOfWork):
    org = make_org(uow, purchase="100")
    (ada,) = add_members(uow, org.id, 1)
    allot(uow, org.id, ada.id, "10")
    captured = holds.place_hold(uow, org.id, ada.id, credits("2"), actor=API_KEY)
    holds.capture_hold(uow, org.id, captured.id, credits("1"), actor=API_KEY)
    voided = holds.place_hold(uow, org.id, ada.id, credits("2"), actor=API_KEY)
    holds.void_hold(uow, org.id, voided.id, actor=API_KEY)
    before = books(uow, org.id)

    for hold in (captured, voided):
        with pytest.raises(InsufficientCredits):
            holds.capture_hold(uow, org.id, hold.id, credits("1"), actor=API_KEY)

    assert books(uow, org.id) == before


def test_voiding_a_hold_releases_it_all(uow: UnitOfWork):
    org = make_org(uow, purchase="100")
    (ada,) = add_members(uow, org.id, 1)
    allot(uow, org.id, ada.id, "10")
    hold = holds.place_hold(uow, org.id, ada.id, credits("6"), actor=API_KEY)

    voided = holds.void_hold(uow, org.id, hold.id, actor=API_KEY)

    assert voided.status is HoldStatus.VOIDED
    after = member(uow, org.id, ada.id)
    assert (after.credits_balance, after.credits_held, after.credits_available) == (
        credits("10"),
        0,
        credits("10"),
    )
    assert reports.list_transfers(uow, org.id, kind=TransferKind.USAGE) == []
    assert_books_clean(uow, org.id)


def test_an_expired_hold_is_available_again_at_once(uow: UnitOfWork, clock: FakeClock):
    org = make_org(uow, purchase="100")
    (ada,) = add_members(uow, org.id, 1)
    allot(uow, org.id, ada.id, "10")
    hold = holds.place_hold(uow, org.id, ada.id, credits("6"), expires_in=60, actor=API_KEY)

    clock.advance(seconds=59)
    assert member(uow, org.id, ada.id).credits_available == credits("4")
    clock.advance(seconds=1)  # now == expires_at

    after = member(uow, org.id, ada.id)
    assert (after.credits_balance, after.credits_held, after.credits_available) == (
        credits("10"),
        0,
        credits("10"),
    )
    assert holds.get_hold(uow, org.id, hold.id).status is HoldStatus.EXPIRED
    with pytest.raises(InsufficientCredits):
        holds.capture_hold(uow, org.id, hold.id, credits("1"), actor=API_KEY)
    # Usage may spend what the expired hold no longer reserves.
    assert charge(uow, org.id, ada.id, "10").member.credits_balance == 0
    assert holds.get_hold(uow, org.id, hold.id).status is HoldStatus.EXPIRED
    assert_books_clean(uow, org.id)


def test_expire_holds_releases_them_in_the_database(uow: UnitOfWork, clock: FakeClock):
    org = make_org(uow, purchase="100")
    ada, bob = add_members(uow, org.id, 2)
    for student in (ada, bob):
        allot(uow, org.id, student.id, "10")
    short = [
        holds.place_hold(uow, org.id, s.id, credits("3"), expires_in=60, actor=API_KEY).id
        for s in (ada, bob)
    ]
    long = holds.place_hold(uow, org.id, ada.id, credits("2"), expires_in=600, actor=API_KEY)
    clock.advance(seconds=61)

    def stored() -> tuple[dict[str, str], dict[str, int]]:
        with uow:
            statuses = dict(
                uow.session.execute(select(Hold.id, Hold.status).where(Hold.org_id == org.id))
                .tuples()
                .all()
            )
            held = dict(
                uow.session.execute(
                    select(Account.member_id, Account.held).where(
                        Account.org_id == org.id, Account.member_id.in_([ada.id, bob.id])
                    )
                )
                .tuples()
                .all()
            )
            return statuses, held

    # Reads already treat them as expired; the rows still say pending until the worker runs.
    assert stored() == (
        {short[0]: "pending", short[1]: "pending", long.id: "pending"},
        {ada.id: credits("5"), bob.id: credits("3")},
    )

    released = holds.expire_holds(uow)

    assert released >= 2  # these two, and any other org's in this database
    assert stored() == (
        {short[0]: "expired", short[1]: "expired", long.id: "pending"},
        {ada.id: credits("2"), bob.id: 0},
    )
    assert member(uow, org.id, ada.id).credits_available == credits("8")
    assert_books_clean(uow, org.id)


def test_a_new_hold_may_reserve_what_an_expired_hold_released(uow: UnitOfWork, clock: FakeClock):
    org = make_org(uow, purchase="100")
    (ada,) = add_members(uow, org.id, 1)
    allot(uow, org.id, ada.id, "10")
    old = holds.place_hold(uow, org.id, ada.id, credits("8"), expires_in=60, actor=API_KEY)
    clock.advance(seconds=60)

    new = holds.place_hold(uow, org.id, ada.id, credits("9"), actor=API_KEY)

    assert new.status is HoldStatus.PENDING
    assert holds.get_hold(uow, org.id, old.id).status is HoldStatus.EXPIRED
    assert member(uow, org.id, ada.id).credits_held == credits("9")
    assert_books_clean(uow, org.id)


@pytest.mark.parametrize("expires_in", [0, -1, 604_801])
def test_a_hold_lasts_one_second_to_a_week(uow: UnitOfWork, expires_in: int):
    org = make_org(uow, purchase="100")
    (ada,) = add_members(uow, org.id, 1)
    allot(uow, org.id, ada.id, "10")

    with pytest.raises(InvalidInput):
        holds.place_hold(uow, org.id, ada.id, credits("1"), expires_in=expires_in, actor=API_KEY)

    week = holds.place_hold(uow, org.id, ada.id, credits("1"), expires_in=604_800, actor=API_KEY)
    assert week.expires_at - week.created_at == timedelta(days=7)


def test_automatic_allocation_counts_only_what_is_not_held(uow: UnitOfWork):
    org = make_org(uow, purchase="100", settings=AUTO)
    (ada,) = add_members(uow, org.id, 1)
    allot(uow, org.id, ada.id, "10")
    holds.place_hold(uow, org.id, ada.id, credits("8"), actor=API_KEY)  # w = 2

    result = charge(uow, org.id, ada.id, "7")

    assert result.auto_allocated == credits("5")  # 2 + 5 >= 7
    after = result.member
    assert (after.credits_balance, after.credits_held, after.credits_available) == (
        credits("8"),  # 10 + 5 - 7
        credits("8"),
        0,
    )
    assert_books_clean(uow, org.id)


def test_a_charge_replayed_with_its_key_moves_nothing_more(uow: UnitOfWork):
    org = make_org(uow, purchase="100")
    (ada,) = add_members(uow, org.id, 1)
    allot(uow, org.id, ada.id, "10")
    first = charge(uow, org.id, ada.id, "4", metrics={"renders": 1}, idempotency_key="job-1")

    replay = charge(uow, org.id, ada.id, "4", metrics={"renders": 1}, idempotency_key="job-1")

    assert replay == first
    after = member(uow, org.id, ada.id)
    assert (after.credits_available, after.usage) == (credits("6"), {"renders": 1})


def test_a_metric_of_zero_is_counted_and_the_books_stay_clean(uow: UnitOfWork):
    org = make_org(uow, purchase="100")
    (ada,) = add_members(uow, org.id, 1)
    allot(uow, org.id, ada.id, "10")

    charge(uow, org.id, ada.id, "1", metrics={"renders": 0, "frames": 10})

    assert member(uow, org.id, ada.id).usage.get("frames") == 10
    assert_books_clean(uow, org.id)
