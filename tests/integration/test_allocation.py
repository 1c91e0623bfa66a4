"""Allotting credits from the pool to members and taking them back, on each engine.

Worked examples of the API's credits calls: one batch per call, all of it or none of it, and
the books (services/audit.py) clean after every scenario. Amounts are micro-credits; `credits`
turns the decimal a reader would type into them.
"""

from __future__ import annotations

import pytest

from creditpool.domain.amounts import MAX_MICROS, credits
from creditpool.domain.errors import (
    IdempotencyMismatch,
    InsufficientCredits,
    InvalidAmount,
    InvalidInput,
    NotFound,
    NotReturnable,
)
from creditpool.domain.model import MemberStatus, Role, Seat, TransferKind
from creditpool.domain.policies import SettingsChange
from creditpool.services import audit, holds, members, orgs, reports, usage
from creditpool.services.credits import allocate_credits, record_purchase, revoke_credits
from creditpool.services.targets import Target
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.clock import FakeClock
from tests.support.factories import OPERATOR, add_members, make_group, make_org

USAGE_KEY = "usage-key:test"  # the actor of usage and holds: an org API key


def wallet(uow: UnitOfWork, org_id: str, member_id: str) -> int:
    """Return what a member can spend now."""
    return members.get_member(uow, org_id, member_id).credits_available


def pool(uow: UnitOfWork, org_id: str) -> int:
    """Return what the pool can give now."""
    return reports.get_balance(uow, org_id).available


def books(uow: UnitOfWork, org_id: str) -> tuple[object, ...]:
    """Return every figure a batch could change: pool, wallets, member totals, transfers."""
    balance = reports.get_balance(uow, org_id)
    figures = {
        m.id: (m.credits_balance, m.credits_held, m.credits_allocated, m.auto_allocated)
        for m in members.list_members(uow, org_id, status=None, limit=500)
    }
    transfers = [t.id for t in reports.list_transfers(uow, org_id, limit=500)]
    return balance.available, balance.allocated, figures, transfers


def assert_books_clean(uow: UnitOfWork, org_id: str) -> None:
    report = audit.audit(uow, org_id)
    assert report.clean, report.breaches


def allot(uow: UnitOfWork, org_id: str, member_ids: list[str], amount: str) -> None:
    allocate_credits(uow, org_id, Target.members(member_ids), credits(amount), actor=OPERATOR)


# Allotting


def test_allotting_to_one_member_moves_credits_from_the_pool_to_its_wallet(uow: UnitOfWork):
    org = make_org(uow, purchase="100")
    (ada,) = add_members(uow, org.id, 1)

    result = allocate_credits(
        uow, org.id, Target.members([ada.id]), credits("12.5"), actor=OPERATOR
    )

    assert result.total == credits("12.5")
    [after] = result.members
    assert (after.id, after.credits_available, after.credits_allocated) == (
        ada.id,
        credits("12.5"),
        credits("12.5"),
    )
    balance = reports.get_balance(uow, org.id)
    assert balance.available == credits("87.5")  # 100 - 12.5
    assert balance.allocated == credits("12.5")
    [transfer] = reports.list_transfers(uow, org.id, kind=TransferKind.ALLOCATION)
    assert (transfer.debit_account, transfer.credit_account) == ("pool", f"wallet:{ada.id}")
    assert (transfer.amount, transfer.member_id, transfer.batch_id) == (
        credits("12.5"),
        ada.id,
        result.batch_id,
    )
    assert_books_clean(uow, org.id)


def test_allotting_to_many_members_is_one_batch(uow: UnitOfWork):
    org = make_org(uow, purchase="100")
    students = add_members(uow, org.id, 3)
    ids = [s.id for s in students]

    result = allocate_credits(uow, org.id, Target.members(ids), credits("10"), actor=OPERATOR)

    assert result.total == credits("30")  # 3 x 10
    assert [m.id for m in result.members] == ids
    assert all(wallet(uow, org.id, i) == credits("10") for i in ids)
    assert pool(uow, org.id) == credits("70")
    transfers = reports.list_transfers(uow, org.id, kind=TransferKind.ALLOCATION)
    assert sorted(t.member_id or "" for t in transfers) == sorted(ids)
    assert {t.batch_id for t in transfers} == {result.batch_id}
    assert_books_clean(uow, org.id)


def test_all_students_means_active_members_whose_role_is_member(uow: UnitOfWork):
    org = make_org(uow, purchase="100")
    (licensed,) = add_members(uow, org.id, 1)
    (external,) = add_members(uow, org.id, 1, seat=Seat.EXTERNAL)
    (manager,) = add_members(uow, org.id, 1, role=Role.MANAGER)
    (gone,) = add_members(uow, org.id, 1)
    members.remove_member(uow, org.id, gone.id, actor=OPERATOR)
    owner = members.list_members(uow, org.id)[0]
    assert owner.role is Role.OWNER

    result = allocate_credits(uow, org.id, Target.all_students(), credits("4"), actor=OPERATOR)

    # Students on any seat are students; the owner, the manager and the removed member are not.
    assert sorted(m.id for m in result.members) == sorted([licensed.id, external.id])
    assert result.total == credits("8")
    for left_out in (owner.id, manager.id, gone.id):
        assert members.get_member(uow, org.id, left_out).credits_balance == 0
    assert pool(uow, org.id) == credits("92")
    assert_books_clean(uow, org.id)


def test_allotting_to_a_group_reaches_only_its_active_members(uow: UnitOfWork):
    org = make_org(uow, purchase="100")
    ada, bob, cy, outsider = add_members(uow, org.id, 4)
    group = make_group(uow, org.id, [ada.id, bob.id, cy.id])
    members.remove_member(uow, org.id, cy.id, actor=OPERATOR)

    result = allocate_credits(uow, org.id, Target.group(group.id), credits("5"), actor=OPERATOR)

    assert sorted(m.id for m in result.members) == sorted([ada.id, bob.id])
    assert result.total == credits("10")
    assert wallet(uow, org.id, cy.id) == 0
    assert wallet(uow, org.id, outsider.id) == 0
    assert pool(uow, org.id) == credits("90")
    assert_books_clean(uow, org.id)


def test_an_unknown_group_is_not_found(uow: UnitOfWork):
    org = make_org(uow, purchase="100")
    before = books(uow, org.id)

    with pytest.raises(NotFound):
        allocate_credits(uow, org.id, Target.group("grp_nope"), credits("5"), actor=OPERATOR)

    assert books(uow, org.id) == before


def test_a_batch_the_pool_cannot_cover_moves_nothing(uow: UnitOfWork):
    org = make_org(uow, purchase="25")
    ids = [s.id for s in add_members(uow, org.id, 3)]
    before = books(uow, org.id)

    # 3 x 10 = 30 > 25: the first two would fit, but a batch is all or nothing.
    with pytest.raises(InsufficientCredits):
        allocate_credits(uow, org.id, Target.members(ids), credits("10"), actor=OPERATOR)

    assert books(uow, org.id) == before
    assert pool(uow, org.id) == credits("25")
    assert reports.list_transfers(uow, org.id, kind=TransferKind.ALLOCATION) == []
    assert_books_clean(uow, org.id)


@pytest.mark.parametrize("who", ["unknown", "removed"])
def test_an_unknown_or_removed_member_fails_the_whole_batch(uow: UnitOfWork, who: str):
    org = make_org(uow, purchase="100")
    ada, bob = add_members(uow, org.id, 2)
    if who == "removed":
        members.remove_member(uow, org.id, bob.id, actor=OPERATOR)
        missing = bob.id
    else:
        missing = "mem_does_not_exist"
    before = books(uow, org.id)

    with pytest.raises(NotFound):
        allocate_credits(
            uow, org.id, Target.members([ada.id, missing]), credits("5"), actor=OPERATOR
        )

    assert books(uow, org.id) == before
    assert wallet(uow, org.id, ada.id) == 0


def test_a_member_named_twice_is_allotted_once(uow: UnitOfWork):
    org = make_org(uow, purchase="100")
    ada, bob = add_members(uow, org.id, 2)

    result = allocate_credits(
        uow, org.id, Target.members([ada.id, bob.id, ada.id]), credits("10"), actor=OPERATOR
    )

    assert result.total == credits("20")
    assert [m.id for m in result.members] == [ada.id, bob.id]
    assert wallet(uow, org.id, ada.id) == credits("10")
    assert pool(uow, org.id) == credits("80")
    assert len(reports.list_transfers(uow, org.id, kind=TransferKind.ALLOCATION)) == 2
    assert_books_clean(uow, org.id)


@pytest.mark.parametrize(
    "amount", [0, -1, -credits("5"), MAX_MICROS + 1], ids=["zero", "-1 micro", "-5", "too big"]
)
def test_an_amount_that_is_not_positive_or_too_big_is_refused(uow: UnitOfWork, amount: int):
    org = make_org(uow, purchase="100")
    (ada,) = add_members(uow, org.id, 1)
    allot(uow, org.id, [ada.id], "10")
    before = books(uow, org.id)

    with pytest.raises(InvalidAmount):
        allocate_credits(uow, org.id, Target.members([ada.id]), amount, actor=OPERATOR)
    with pytest.raises(InvalidAmount):
        revoke_credits(uow, org.id, Target.members([ada.id]), amount, actor=OPERATOR)
    with pytest.raises(InvalidAmount):
        record_purchase(uow, org.id, amount, actor=OPERATOR)

    assert books(uow, org.id) == before


def test_a_target_must_name_exactly_one_kind_of_recipient(uow: UnitOfWork):
    org = make_org(uow, purchase="100")
    (ada,) = add_members(uow, org.id, 1)
    before = books(uow, org.id)

    for target in (Target(), Target(member_ids=(ada.id,), everyone=True)):
        with pytest.raises(InvalidInput):
            allocate_credits(uow, org.id, target, credits("1"), actor=OPERATOR)

    assert books(uow, org.id) == before


def test_allotting_works_while_the_org_is_paused(uow: UnitOfWork):
    org = make_org(uow, purchase="100")
    (ada,) = add_members(uow, org.id, 1)
    orgs.set_paused(uow, org.id, paused=True, actor=OPERATOR)

    allot(uow, org.id, [ada.id], "7")

    assert wallet(uow, org.id, ada.id) == credits("7")
    assert pool(uow, org.id) == credits("93")
    assert_books_clean(uow, org.id)


# Revoking


def test_revoking_an_amount_returns_it_to_the_pool(uow: UnitOfWork):
    org = make_org(uow, purchase="100")
    ada, bob = add_members(uow, org.id, 2)
    allot(uow, org.id, [ada.id, bob.id], "10")

    result = revoke_credits(
        uow, org.id, Target.members([ada.id, bob.id]), credits("4"), actor=OPERATOR
    )

    assert result.total == credits("8")
    assert [m.credits_available for m in result.members] == [credits("6"), credits("6")]
    # credits_allocated counts what was ever allotted: revocation does not lower it.
    assert [m.credits_allocated for m in result.members] == [credits("10"), credits("10")]
    assert pool(uow, org.id) == credits("88")  # 100 - 20 + 8
    revocations = reports.list_transfers(uow, org.id, kind=TransferKind.REVOCATION)
    assert sorted((t.member_id or "", t.debit_account, t.credit_account) for t in revocations) == (
        sorted([(m, f"wallet:{m}", "pool") for m in (ada.id, bob.id)])
    )
    assert {t.batch_id for t in revocations} == {result.batch_id}
    assert_books_clean(uow, org.id)


def test_revoking_everything_takes_what_each_member_has_available(uow: UnitOfWork):
    org = make_org(uow, purchase="100")
    ada, bob, cy = add_members(uow, org.id, 3)
    allot(uow, org.id, [ada.id, bob.id], "10")
    usage.charge_usage(uow, org.id, bob.id, credits("7"), actor=USAGE_KEY)  # bob keeps 3

    result = revoke_credits(uow, org.id, Target.all_students(), actor=OPERATOR)

    assert result.total == credits("13")  # 10 from ada, 3 from bob, nothing from cy
    assert all(m.credits_available == 0 for m in result.members)
    assert pool(uow, org.id) == credits("93")  # 100 - 20 + 13
    revocations = reports.list_transfers(uow, org.id, kind=TransferKind.REVOCATION)
    assert sorted((t.member_id or "", t.amount) for t in revocations) == sorted(
        [(ada.id, credits("10")), (bob.id, credits("3"))]
    )
    assert cy.id not in {t.member_id for t in revocations}
    assert_books_clean(uow, org.id)


def test_revoking_from_all_students_leaves_managers_alone(uow: UnitOfWork):
    org = make_org(uow, purchase="100")
    (ada,) = add_members(uow, org.id, 1)
    (manager,) = add_members(uow, org.id, 1, role=Role.MANAGER)
    allot(uow, org.id, [ada.id, manager.id], "10")

    result = revoke_credits(uow, org.id, Target.all_students(), actor=OPERATOR)

    assert result.total == credits("10")
    assert wallet(uow, org.id, ada.id) == 0
    assert wallet(uow, org.id, manager.id) == credits("10")
    assert_books_clean(uow, org.id)


@pytest.mark.parametrize("when", ["at creation", "changed later"])
def test_revoking_is_refused_when_the_org_keeps_credits_with_members(uow: UnitOfWork, when: str):
    if when == "at creation":
        org = make_org(uow, purchase="100", settings=SettingsChange(returnable=False))
    else:
        org = make_org(uow, purchase="100")
        orgs.update_settings(uow, org.id, SettingsChange(returnable=False), actor=OPERATOR)
    (ada,) = add_members(uow, org.id, 1)
    allot(uow, org.id, [ada.id], "10")
    before = books(uow, org.id)

    with pytest.raises(NotReturnable):
        revoke_credits(uow, org.id, Target.members([ada.id]), credits("1"), actor=OPERATOR)
    with pytest.raises(NotReturnable):
        revoke_credits(uow, org.id, Target.all_students(), actor=OPERATOR)

    assert books(uow, org.id) == before
    assert wallet(uow, org.id, ada.id) == credits("10")


def test_a_fixed_amount_one_member_cannot_cover_moves_nothing(uow: UnitOfWork):
    org = make_org(uow, purchase="100")
    ada, bob = add_members(uow, org.id, 2)
    allot(uow, org.id, [ada.id], "10")
    allot(uow, org.id, [bob.id], "3")
    before = books(uow, org.id)

    with pytest.raises(InsufficientCredits):
        revoke_credits(uow, org.id, Target.members([ada.id, bob.id]), credits("5"), actor=OPERATOR)

    assert books(uow, org.id) == before
    assert wallet(uow, org.id, ada.id) == credits("10")
    assert_books_clean(uow, org.id)


def test_held_credits_cannot_be_revoked_by_a_fixed_amount(uow: UnitOfWork):
    org = make_org(uow, purchase="100")
    (ada,) = add_members(uow, org.id, 1)
    allot(uow, org.id, [ada.id], "10")
    holds.place_hold(uow, org.id, ada.id, credits("8"), actor=USAGE_KEY)  # 2 left available
    before = books(uow, org.id)

    with pytest.raises(InsufficientCredits):
        revoke_credits(uow, org.id, Target.members([ada.id]), credits("5"), actor=OPERATOR)

    assert books(uow, org.id) == before


def test_revoking_everything_leaves_credits_under_an_open_hold(uow: UnitOfWork):
    org = make_org(uow, purchase="100")
    (ada,) = add_members(uow, org.id, 1)
    allot(uow, org.id, [ada.id], "10")
    hold = holds.place_hold(uow, org.id, ada.id, credits("4"), actor=USAGE_KEY)

    result = revoke_credits(uow, org.id, Target.members([ada.id]), actor=OPERATOR)

    assert result.total == credits("6")
    after = members.get_member(uow, org.id, ada.id)
    assert (after.credits_balance, after.credits_held, after.credits_available) == (
        credits("4"),
        credits("4"),
        0,
    )
    assert pool(uow, org.id) == credits("96")  # 100 - 10 + 6
    # The reserve is intact: the job can still be paid for.
    holds.capture_hold(uow, org.id, hold.id, credits("4"), actor=USAGE_KEY)
    assert members.get_member(uow, org.id, ada.id).credits_balance == 0
    assert_books_clean(uow, org.id)


def test_revoking_everything_frees_an_expired_hold_first(uow: UnitOfWork, clock: FakeClock):
    org = make_org(uow, purchase="100")
    (ada,) = add_members(uow, org.id, 1)
    allot(uow, org.id, [ada.id], "10")
    holds.place_hold(uow, org.id, ada.id, credits("4"), expires_in=60, actor=USAGE_KEY)
    clock.advance(seconds=60)

    result = revoke_credits(uow, org.id, Target.members([ada.id]), actor=OPERATOR)

    assert result.total == credits("10")
    assert members.get_member(uow, org.id, ada.id).credits_balance == 0
    assert_books_clean(uow, org.id)


@pytest.mark.parametrize("who", ["unknown", "removed"])
def test_revoking_from_an_unknown_or_removed_member_is_not_found(uow: UnitOfWork, who: str):
    org = make_org(uow, purchase="100")
    ada, bob = add_members(uow, org.id, 2)
    allot(uow, org.id, [ada.id, bob.id], "10")
    if who == "removed":
        members.remove_member(uow, org.id, bob.id, actor=OPERATOR)
        missing = bob.id
    else:
        missing = "mem_does_not_exist"
    before = books(uow, org.id)

    with pytest.raises(NotFound):
        revoke_credits(uow, org.id, Target.members([ada.id, missing]), actor=OPERATOR)

    assert books(uow, org.id) == before


def test_credits_allocated_counts_manual_and_automatic_and_never_drops(uow: UnitOfWork):
    auto = SettingsChange(
        auto_enabled=True, auto_bundle=credits("5"), auto_max_per_member=credits("20")
    )
    org = make_org(uow, purchase="100", settings=auto)
    (ada,) = add_members(uow, org.id, 1)
    allot(uow, org.id, [ada.id], "3")
    # 3 available, 7 needed: one bundle of 5 makes 8, then 7 is spent and 1 is left.
    usage.charge_usage(uow, org.id, ada.id, credits("7"), actor=USAGE_KEY)

    revoke_credits(uow, org.id, Target.members([ada.id]), actor=OPERATOR)

    after = members.get_member(uow, org.id, ada.id)
    assert after.credits_allocated == credits("8")  # 3 by hand + 5 automatically
    assert after.auto_allocated == credits("5")
    assert after.credits_used == credits("7")
    assert after.credits_available == 0
    assert pool(uow, org.id) == credits("93")  # 100 - 3 - 5 + 1
    assert_books_clean(uow, org.id)


# The ledger


def test_transfers_are_listed_newest_first_and_filter_by_kind_and_member(
    uow: UnitOfWork, clock: FakeClock
):
    org = make_org(uow, purchase="100")
    ada, bob = add_members(uow, org.id, 2)
    clock.advance(minutes=1)
    allot(uow, org.id, [ada.id], "10")
    clock.advance(minutes=1)
    allot(uow, org.id, [bob.id], "5")
    clock.advance(minutes=1)
    revoke_credits(uow, org.id, Target.members([ada.id]), credits("4"), actor=OPERATOR)

    def listed(**filters: str) -> list[tuple[str, str | None, int]]:
        found = reports.list_transfers(uow, org.id, **filters)
        times = [t.created_at for t in found]
        assert times == sorted(times, reverse=True)
        return [(t.kind, t.member_id, t.amount) for t in found]

    assert listed() == [
        ("revocation", ada.id, credits("4")),
        ("allocation", bob.id, credits("5")),
        ("allocation", ada.id, credits("10")),
        ("purchase", None, credits("100")),
    ]
    assert listed(kind="allocation") == [
        ("allocation", bob.id, credits("5")),
        ("allocation", ada.id, credits("10")),
    ]
    assert listed(member_id=ada.id) == [
        ("revocation", ada.id, credits("4")),
        ("allocation", ada.id, credits("10")),
    ]
    assert listed(member_id=ada.id, kind="revocation") == [("revocation", ada.id, credits("4"))]


# Idempotency


def test_an_allotment_replayed_with_its_key_moves_nothing_more(uow: UnitOfWork):
    org = make_org(uow, purchase="100")
    (ada,) = add_members(uow, org.id, 1)
    target = Target.members([ada.id])
    first = allocate_credits(
        uow, org.id, target, credits("60"), actor=OPERATOR, idempotency_key="allot-1"
    )
    after_first = books(uow, org.id)

    # The pool has 40 left, short of 60: only a replay can answer this call with success.
    replay = allocate_credits(
        uow, org.id, target, credits("60"), actor=OPERATOR, idempotency_key="allot-1"
    )

    assert replay == first
    assert books(uow, org.id) == after_first
    assert wallet(uow, org.id, ada.id) == credits("60")
    assert pool(uow, org.id) == credits("40")
    assert_books_clean(uow, org.id)


def test_a_revocation_replayed_with_its_key_moves_nothing_more(uow: UnitOfWork):
    org = make_org(uow, purchase="100")
    (ada,) = add_members(uow, org.id, 1)
    allot(uow, org.id, [ada.id], "10")
    target = Target.members([ada.id])
    first = revoke_credits(uow, org.id, target, credits("3"), actor=OPERATOR, idempotency_key="r")

    replay = revoke_credits(uow, org.id, target, credits("3"), actor=OPERATOR, idempotency_key="r")

    assert replay == first
    assert wallet(uow, org.id, ada.id) == credits("7")
    assert len(reports.list_transfers(uow, org.id, kind=TransferKind.REVOCATION)) == 1


@pytest.mark.parametrize("change", ["amount", "target"])
def test_a_key_reused_with_other_arguments_is_refused(uow: UnitOfWork, change: str):
    org = make_org(uow, purchase="100")
    ada, bob = add_members(uow, org.id, 2)
    allocate_credits(
        uow, org.id, Target.members([ada.id]), credits("10"), actor=OPERATOR, idempotency_key="k"
    )
    before = books(uow, org.id)
    target = Target.members([bob.id] if change == "target" else [ada.id])
    amount = credits("11") if change == "amount" else credits("10")

    with pytest.raises(IdempotencyMismatch):
        allocate_credits(uow, org.id, target, amount, actor=OPERATOR, idempotency_key="k")

    assert books(uow, org.id) == before


def test_removed_members_keep_their_figures(uow: UnitOfWork):
    org = make_org(uow, purchase="100")
    (ada,) = add_members(uow, org.id, 1)
    allot(uow, org.id, [ada.id], "10")

    removed = members.remove_member(uow, org.id, ada.id, actor=OPERATOR)

    assert removed.status is MemberStatus.REMOVED
    assert removed.credits_allocated == credits("10")
    assert removed.credits_balance == 0  # returnable org: the wallet went back to the pool
    assert pool(uow, org.id) == credits("100")
    assert_books_clean(uow, org.id)
