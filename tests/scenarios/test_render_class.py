"""Allocation: an instructor's render class, told as one term from first day to reset.

The instructor's org buys 100 credits. Thirty students join; each is allotted 3 credits in one
batch, so 30 x 3 = 90 credits sit in wallets and 100 - 90 = 10 stay in the pool. A render costs
credits and reports metrics {"renders": 1, "frames": 240}, summed per student and for the org.
At the end of term one reset removes every student, returns whatever they still hold to the
pool and rotates the invite code, and the books still balance.

Seat rates are left at the default 0, so nothing burns: every figure below moves only when a
service says so. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import pytest

from creditpool.domain.amounts import credits
from creditpool.domain.errors import InsufficientCredits, InviteInvalid
from creditpool.domain.model import MemberStatus, Role, TransferKind
from creditpool.services import audit, invitations, members, orgs, reports, resets, usage
from creditpool.services import credits as credit_service
from creditpool.services.targets import Target
from creditpool.services.views import MemberView
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.factories import OPERATOR, add_members, make_org, make_user

RENDER_FARM = "api-key:render-farm"
ONE_RENDER = {"renders": 1, "frames": 240}
CLASS_SIZE = 30
PURCHASED = credits("100")
EACH = credits("3")


def render(uow: UnitOfWork, org_id: str, student: MemberView, cost: str) -> MemberView:
    """The render farm charges one render of `cost` credits; returns the student after it."""
    return usage.charge_usage(
        uow, org_id, student.id, credits(cost), metrics=ONE_RENDER, actor=RENDER_FARM
    ).member


def transfers_of_kind(uow: UnitOfWork, org_id: str, kind: TransferKind) -> int:
    return len(reports.list_transfers(uow, org_id, kind=kind, limit=500))


def test_a_term_of_the_render_class(uow: UnitOfWork) -> None:
    # The operator opens the class with 100 credits; thirty students join by the invite link.
    org = make_org(uow, name="Render class", purchase="100")
    invite_code_at_start = org.invite_code
    students = [
        invitations.join_by_code(uow, invite_code_at_start, user_id=make_user(uow).id)
        for _ in range(CLASS_SIZE)
    ]
    assert {(s.role, s.status) for s in students} == {(Role.MEMBER, MemberStatus.ACTIVE)}

    # One batch allots 3 credits to every student: 30 x 3 = 90 used, 100 - 90 = 10 left.
    batch = credit_service.allocate_credits(
        uow, org.id, Target.all_students(), EACH, actor=OPERATOR
    )
    assert batch.total == CLASS_SIZE * EACH == credits("90")
    assert len(batch.members) == CLASS_SIZE  # the owner is not a student: not allotted
    assert {m.credits_available for m in batch.members} == {EACH}
    balance = reports.get_balance(uow, org.id)
    assert balance.available == PURCHASED - CLASS_SIZE * EACH == credits("10")
    assert balance.allocated == credits("90")
    assert transfers_of_kind(uow, org.id, TransferKind.ALLOCATION) == CLASS_SIZE
    # One batch is one batch id on all thirty transfers.
    allotments = reports.list_transfers(uow, org.id, kind=TransferKind.ALLOCATION, limit=500)
    assert {t.batch_id for t in allotments} == {batch.batch_id}

    # A 31st allotment asks for one micro-credit more than the 10 left: refused, nothing moves.
    with pytest.raises(InsufficientCredits):
        credit_service.allocate_credits(
            uow, org.id, Target.members([students[0].id]), credits("10.000001"), actor=OPERATOR
        )
    assert reports.get_balance(uow, org.id).available == credits("10")
    assert members.get_member(uow, org.id, students[0].id).credits_available == EACH
    assert transfers_of_kind(uow, org.id, TransferKind.ALLOCATION) == CLASS_SIZE

    # Student 0 renders three times at 0.5 credits; student 1 renders once at 1 credit.
    for _ in range(3):
        first = render(uow, org.id, students[0], "0.5")
    second = render(uow, org.id, students[1], "1")
    # Per student: 3 - 3 x 0.5 = 1.5 left, 3 renders of 240 frames = 720 frames; 3 - 1 = 2 left.
    assert first.credits_available == credits("1.5")
    assert first.credits_used == credits("1.5")
    assert first.usage == {"renders": 3, "frames": 3 * 240}
    assert second.credits_available == credits("2")
    assert second.usage == {"renders": 1, "frames": 240}
    # For the org: 3 + 1 = 4 renders, 4 x 240 = 960 frames, 1.5 + 1 = 2.5 credits used.
    assert orgs.get_org(uow, org.id).usage == {"renders": 4, "frames": 960}
    assert reports.get_balance(uow, org.id).used == credits("2.5")
    # A student who never rendered shows no metrics and all 3 credits.
    untouched = members.get_member(uow, org.id, students[29].id)
    assert (untouched.usage, untouched.credits_available) == ({}, EACH)

    # Revoke 1 credit from student 1 (2 -> 1), and everything from students 2, 3 and 4 (3 each).
    some = credit_service.revoke_credits(
        uow, org.id, Target.members([students[1].id]), credits("1"), actor=OPERATOR
    )
    assert some.total == credits("1")
    assert some.members[0].credits_available == credits("1")
    a_few = [s.id for s in students[2:5]]
    everything = credit_service.revoke_credits(uow, org.id, Target.members(a_few), actor=OPERATOR)
    assert everything.total == 3 * EACH == credits("9")
    assert {m.credits_available for m in everything.members} == {0}
    # Pool: 10 + 1 + 9 = 20.
    assert reports.get_balance(uow, org.id).available == credits("20")

    # End of term: what sits in wallets now is
    #   student 0: 1.5, student 1: 1, students 2-4: 0, students 5-29: 25 x 3 = 75  -> 77.5.
    still_held = credits("1.5") + credits("1") + 25 * EACH
    assert still_held == credits("77.5")
    preview = resets.preview_reset(uow, org.id)
    assert (preview.removed, preview.revoked) == (CLASS_SIZE, still_held)

    reset = resets.reset_org(uow, org.id, actor=OPERATOR)

    # Every student removed, all their credits back: pool 20 + 77.5 = 97.5 = 100 - 2.5 used.
    assert reset.removed == CLASS_SIZE
    assert reset.revoked == still_held
    balance = reports.get_balance(uow, org.id)
    assert balance.available == credits("20") + still_held == PURCHASED - credits("2.5")
    assert balance.allocated == 0
    # The invite code changed, and the org shows the new one.
    assert reset.invite_code != invite_code_at_start
    assert orgs.get_org(uow, org.id).invite_code == reset.invite_code
    # Only the owner is still active; the thirty are removed with their history kept.
    active = members.list_members(uow, org.id)
    assert [m.role for m in active] == [Role.OWNER]
    removed = members.list_members(uow, org.id, status=MemberStatus.REMOVED, limit=100)
    assert len(removed) == CLASS_SIZE
    assert {m.credits_balance for m in removed} == {0}
    kept = members.get_member(uow, org.id, students[0].id)
    assert (kept.usage, kept.credits_used) == ({"renders": 3, "frames": 720}, credits("1.5"))
    assert orgs.get_org(uow, org.id).usage == {"renders": 4, "frames": 960}

    report = audit.audit(uow, org.id)
    assert report.clean, report.breaches

    # Next term: last term's link no longer works; the new one does.
    with pytest.raises(InviteInvalid):
        invitations.join_by_code(uow, invite_code_at_start, user_id=make_user(uow).id)
    newcomer = invitations.join_by_code(uow, reset.invite_code, user_id=make_user(uow).id)
    assert newcomer.status is MemberStatus.ACTIVE


def test_a_batch_the_pool_cannot_cover_moves_nothing_for_anyone(uow: UnitOfWork) -> None:
    # 10 credits for 30 students: 30 x 0.34 = 10.2 > 10, so not even the first gets any.
    org = make_org(uow, purchase="10")
    add_members(uow, org.id, CLASS_SIZE)

    with pytest.raises(InsufficientCredits):
        credit_service.allocate_credits(
            uow, org.id, Target.all_students(), credits("0.34"), actor=OPERATOR
        )

    assert reports.get_balance(uow, org.id).available == credits("10")
    assert {m.credits_available for m in members.list_members(uow, org.id, limit=100)} == {0}
    assert transfers_of_kind(uow, org.id, TransferKind.ALLOCATION) == 0
    # 30 x 0.333333 = 9.99999 fits: the pool keeps 10 - 9.99999 = 0.00001.
    credit_service.allocate_credits(
        uow, org.id, Target.all_students(), credits("0.333333"), actor=OPERATOR
    )
    assert reports.get_balance(uow, org.id).available == credits("0.00001")
