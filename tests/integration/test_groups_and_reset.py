"""Groups (classes inside an org) and the one-button reset of a class, on both engines."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import select

from creditpool.domain.amounts import credits
from creditpool.domain.errors import AlreadyExists, NotFound, PreviewOutdated
from creditpool.domain.model import HoldStatus, InvitationStatus, MemberStatus, Role
from creditpool.domain.policies import SettingsChange
from creditpool.services import credits as credit_service
from creditpool.services import groups, holds, members, orgs, reports, resets, usage
from creditpool.services.audit import audit
from creditpool.services.targets import Target
from creditpool.services.views import MemberView
from creditpool.storage.ids import new_id
from creditpool.storage.schema import Invitation
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.clock import FakeClock
from tests.support.factories import OPERATOR, add_members, make_org

USAGE_KEY = "apikey:test"


def group_member_ids(uow: UnitOfWork, org_id: str, group_id: str) -> set[str]:
    return {m.id for m in members.list_members(uow, org_id, group_id=group_id)}


# Groups


def test_a_new_group_is_empty_and_listed(uow: UnitOfWork) -> None:
    org = make_org(uow)

    group = groups.create_group(uow, org.id, "  Monday class ", actor=OPERATOR)

    assert (group.name, group.member_count) == ("Monday class", 0)
    assert groups.list_groups(uow, org.id) == [group]


def test_a_group_name_is_unique_within_its_org_only(uow: UnitOfWork) -> None:
    org, other = make_org(uow), make_org(uow)
    groups.create_group(uow, org.id, "Monday", actor=OPERATOR)

    with pytest.raises(AlreadyExists):
        groups.create_group(uow, org.id, "Monday", actor=OPERATOR)

    assert len(groups.list_groups(uow, org.id)) == 1
    assert groups.create_group(uow, other.id, "Monday", actor=OPERATOR).name == "Monday"


def test_rename_a_group(uow: UnitOfWork) -> None:
    org = make_org(uow)
    monday = groups.create_group(uow, org.id, "Monday", actor=OPERATOR)
    groups.create_group(uow, org.id, "Tuesday", actor=OPERATOR)

    renamed = groups.rename_group(uow, org.id, monday.id, "Wednesday")
    with pytest.raises(AlreadyExists):
        groups.rename_group(uow, org.id, monday.id, "Tuesday")

    assert (renamed.id, renamed.name) == (monday.id, "Wednesday")
    assert [g.name for g in groups.list_groups(uow, org.id)] == ["Tuesday", "Wednesday"]


def test_set_group_members_replaces_the_whole_membership(uow: UnitOfWork) -> None:
    org = make_org(uow)
    a, b, c = add_members(uow, org.id, 3)
    group = groups.create_group(uow, org.id, "Class", actor=OPERATOR)
    groups.set_group_members(uow, org.id, group.id, [a.id, b.id])

    replaced = groups.set_group_members(uow, org.id, group.id, [b.id, c.id])

    assert replaced.member_count == 2
    assert group_member_ids(uow, org.id, group.id) == {b.id, c.id}
    assert members.get_member(uow, org.id, a.id).groups == []


def test_set_group_members_refuses_a_member_of_another_org(uow: UnitOfWork) -> None:
    org, other = make_org(uow), make_org(uow)
    (ours,) = add_members(uow, org.id, 1)
    (stranger,) = add_members(uow, other.id, 1)
    group = groups.create_group(uow, org.id, "Class", actor=OPERATOR)
    groups.set_group_members(uow, org.id, group.id, [ours.id])

    with pytest.raises(NotFound):
        groups.set_group_members(uow, org.id, group.id, [ours.id, stranger.id])

    assert group_member_ids(uow, org.id, group.id) == {ours.id}


def test_setting_a_group_keeps_its_removed_members_for_when_they_come_back(
    uow: UnitOfWork,
) -> None:
    org = make_org(uow)
    a, b, c = add_members(uow, org.id, 3)
    group = groups.create_group(uow, org.id, "Class", actor=OPERATOR)
    groups.set_group_members(uow, org.id, group.id, [a.id, b.id])
    members.remove_member(uow, org.id, b.id, actor=OPERATOR)

    # The class manager lists active members only: it sets a and c.
    groups.set_group_members(uow, org.id, group.id, [a.id, c.id])
    back = members.add_member(uow, org.id, user_id=b.user_id, actor=OPERATOR)

    assert back.groups == [group.id]
    assert groups.list_groups(uow, org.id)[0].member_count == 3


def test_saving_a_group_renames_it_and_sets_its_members_or_does_neither(
    uow: UnitOfWork,
) -> None:
    org = make_org(uow)
    a, b = add_members(uow, org.id, 2)
    (stranger,) = add_members(uow, make_org(uow).id, 1)
    group = groups.create_group(uow, org.id, "Monday", actor=OPERATOR)
    groups.create_group(uow, org.id, "Tuesday", actor=OPERATOR)

    saved = groups.save_group(uow, org.id, group.id, name="Monday lab", member_ids=[a.id])
    with pytest.raises(AlreadyExists):
        groups.save_group(uow, org.id, group.id, name="Tuesday", member_ids=[a.id, b.id])
    with pytest.raises(NotFound):
        groups.save_group(uow, org.id, group.id, name="Lab", member_ids=[stranger.id])

    assert (saved.name, saved.member_count) == ("Monday lab", 1)
    after = {g.id: g.name for g in groups.list_groups(uow, org.id)}
    assert after[group.id] == "Monday lab"
    assert group_member_ids(uow, org.id, group.id) == {a.id}


def test_member_count_counts_active_members_only(uow: UnitOfWork) -> None:
    org = make_org(uow)
    a, b, c = add_members(uow, org.id, 3)
    group = groups.create_group(uow, org.id, "Class", actor=OPERATOR)
    groups.set_group_members(uow, org.id, group.id, [a.id, b.id, c.id])

    members.remove_member(uow, org.id, b.id, actor=OPERATOR)

    assert [g.member_count for g in groups.list_groups(uow, org.id)] == [2]
    assert group_member_ids(uow, org.id, group.id) == {a.id, c.id}


def test_deleting_a_group_leaves_its_members_untouched(uow: UnitOfWork) -> None:
    org = make_org(uow, purchase="20")
    a, b = add_members(uow, org.id, 2)
    group = groups.create_group(uow, org.id, "Class", actor=OPERATOR)
    groups.set_group_members(uow, org.id, group.id, [a.id, b.id])
    credit_service.allocate_credits(
        uow, org.id, Target.group(group.id), credits("3"), actor=OPERATOR
    )

    groups.delete_group(uow, org.id, group.id)

    assert groups.list_groups(uow, org.id) == []
    for member in (a, b):
        after = members.get_member(uow, org.id, member.id)
        assert (after.status, after.groups, after.credits_balance) == (
            MemberStatus.ACTIVE,
            [],
            credits("3"),
        )


def test_a_member_may_be_in_several_groups(uow: UnitOfWork) -> None:
    org = make_org(uow, settings=SettingsChange(rate_licensed=credits("1")))
    (student,) = add_members(uow, org.id, 1)
    rate_before = reports.get_balance(uow, org.id).burn_rate_per_year
    monday = groups.create_group(uow, org.id, "Monday", actor=OPERATOR)
    friday = groups.create_group(uow, org.id, "Friday", actor=OPERATOR)

    groups.set_group_members(uow, org.id, monday.id, [student.id])
    groups.set_group_members(uow, org.id, friday.id, [student.id])

    assert set(members.get_member(uow, org.id, student.id).groups) == {monday.id, friday.id}
    assert [g.member_count for g in groups.list_groups(uow, org.id)] == [1, 1]
    # Classes never change what anyone burns.
    assert reports.get_balance(uow, org.id).burn_rate_per_year == rate_before


# Reset


@dataclass(frozen=True)
class Classroom:
    """An org with an owner, a manager, three students and credits spread among them."""

    org_id: str
    owner: MemberView
    manager: MemberView
    students: list[MemberView]
    hold_id: str


def open_classroom(uow: UnitOfWork, *, returnable: bool = True) -> Classroom:
    """Buy 100; allot 5 to the manager and 10 to each student; student 0 uses 2, student 1
    holds 3. Wallets: manager 5, students 8, 10 (3 held), 10; the pool keeps 65."""
    org = make_org(uow, purchase="100", settings=SettingsChange(returnable=returnable))
    (owner,) = members.list_members(uow, org.id)
    (manager,) = add_members(uow, org.id, 1, role=Role.MANAGER)
    students = add_members(uow, org.id, 3)
    credit_service.allocate_credits(
        uow, org.id, Target.members([manager.id]), credits("5"), actor=OPERATOR
    )
    credit_service.allocate_credits(
        uow, org.id, Target.all_students(), credits("10"), actor=OPERATOR
    )
    usage.charge_usage(uow, org.id, students[0].id, credits("2"), actor=USAGE_KEY)
    hold = holds.place_hold(uow, org.id, students[1].id, credits("3"), actor=USAGE_KEY)
    return Classroom(org.id, owner, manager, students, hold.id)


def invite(uow: UnitOfWork, org_id: str, email: str, status: InvitationStatus) -> str:
    """Write an invitation row directly, in any status, expiring in 7 days."""
    invitation_id = new_id("inv")
    with uow:
        uow.session.add(
            Invitation(
                org_id=org_id,
                id=invitation_id,
                email=email,
                role=Role.MEMBER,
                seat="licensed",
                status=status,
                token_hash=hashlib.sha256(invitation_id.encode()).hexdigest(),
                created_at=uow.now,
                expires_at=uow.now + timedelta(days=7),
            )
        )
        uow.commit()
    return invitation_id


def invitation_statuses(uow: UnitOfWork, org_id: str) -> dict[str, str]:
    with uow:
        rows = uow.session.execute(
            select(Invitation.id, Invitation.status).where(Invitation.org_id == org_id)
        ).tuples()
        return {invitation_id: status for invitation_id, status in rows}


def snapshot(uow: UnitOfWork, org_id: str) -> tuple[object, ...]:
    """Everything a reset would change, to show that a preview changes none of it."""
    return (
        members.list_members(uow, org_id, status=None),
        reports.get_balance(uow, org_id),
        reports.list_transfers(uow, org_id, limit=500),
        orgs.get_org(uow, org_id).invite_code,
        invitation_statuses(uow, org_id),
    )


def test_preview_shows_what_the_reset_then_does_and_changes_nothing(uow: UnitOfWork) -> None:
    room = open_classroom(uow)
    invite(uow, room.org_id, "new1@example.test", InvitationStatus.PENDING)
    invite(uow, room.org_id, "new2@example.test", InvitationStatus.PENDING)
    before = snapshot(uow, room.org_id)

    preview = resets.preview_reset(uow, room.org_id)

    assert snapshot(uow, room.org_id) == before
    # Three students; their wallets hold 8 + 10 + 10 = 28, the 3 held included.
    assert (preview.removed, preview.revoked, preview.invitations_revoked) == (3, credits("28"), 2)
    assert preview.invite_code == orgs.get_org(uow, room.org_id).invite_code

    done = resets.reset_org(uow, room.org_id, actor=OPERATOR)

    assert (done.removed, done.revoked, done.invitations_revoked) == (
        preview.removed,
        preview.revoked,
        preview.invitations_revoked,
    )


def test_a_reset_confirmed_from_a_stale_preview_is_refused_and_changes_nothing(
    uow: UnitOfWork,
) -> None:
    room = open_classroom(uow)
    preview = resets.preview_reset(uow, room.org_id)
    # Between the look and the click, one more student joins.
    add_members(uow, room.org_id, 1)
    before = snapshot(uow, room.org_id)

    with pytest.raises(PreviewOutdated):
        resets.reset_org(uow, room.org_id, actor=OPERATOR, expected=preview)

    assert snapshot(uow, room.org_id) == before
    fresh = resets.preview_reset(uow, room.org_id)
    assert fresh.removed == preview.removed + 1
    done = resets.reset_org(uow, room.org_id, actor=OPERATOR, expected=fresh)
    assert done.removed == fresh.removed


def test_an_invitation_that_expired_since_the_preview_does_not_stop_the_reset(
    uow: UnitOfWork, clock: FakeClock
) -> None:
    room = open_classroom(uow)
    invite(uow, room.org_id, "late@example.test", InvitationStatus.PENDING)
    preview = resets.preview_reset(uow, room.org_id)
    clock.advance(days=8)  # the invitation lapses on its own

    done = resets.reset_org(uow, room.org_id, actor=OPERATOR, expected=preview)

    assert (preview.invitations_revoked, done.invitations_revoked) == (1, 0)
    assert done.removed == preview.removed
    # A new invitation since the preview is a difference, though: one more would be revoked.
    later = resets.preview_reset(uow, room.org_id)
    invite(uow, room.org_id, "new@example.test", InvitationStatus.PENDING)
    with pytest.raises(PreviewOutdated):
        resets.reset_org(uow, room.org_id, actor=OPERATOR, expected=later)


def test_reset_removes_the_students_and_returns_all_their_credits_when_returnable(
    uow: UnitOfWork,
) -> None:
    room = open_classroom(uow)

    result = resets.reset_org(uow, room.org_id, actor=OPERATOR)

    active = {m.id for m in members.list_members(uow, room.org_id)}
    removed = {m.id for m in members.list_members(uow, room.org_id, status=MemberStatus.REMOVED)}
    assert active == {room.owner.id, room.manager.id}
    assert removed == {s.id for s in room.students}
    assert result.revoked == credits("28")
    assert holds.get_hold(uow, room.org_id, room.hold_id).status is HoldStatus.VOIDED
    for student in members.list_members(uow, room.org_id, status=MemberStatus.REMOVED):
        assert (student.credits_balance, student.credits_held) == (0, 0)
    balance = reports.get_balance(uow, room.org_id)
    # The pool's 65 plus the 28 returned; only the manager's 5 stays out.
    assert (balance.available, balance.allocated) == (credits("93"), credits("5"))
    assert audit(uow, room.org_id).clean


def test_reset_leaves_credits_on_the_removed_students_when_not_returnable(
    uow: UnitOfWork,
) -> None:
    room = open_classroom(uow, returnable=False)

    result = resets.reset_org(uow, room.org_id, actor=OPERATOR)

    assert (result.removed, result.revoked) == (3, 0)
    assert holds.get_hold(uow, room.org_id, room.hold_id).status is HoldStatus.VOIDED
    left = {
        m.id: (m.credits_balance, m.credits_held)
        for m in members.list_members(uow, room.org_id, status=MemberStatus.REMOVED)
    }
    assert left == {
        room.students[0].id: (credits("8"), 0),
        room.students[1].id: (credits("10"), 0),
        room.students[2].id: (credits("10"), 0),
    }
    assert reports.get_balance(uow, room.org_id).available == credits("65")
    assert audit(uow, room.org_id).clean


def test_reset_revokes_pending_invitations_and_rotates_the_invite_code(uow: UnitOfWork) -> None:
    room = open_classroom(uow)
    old_code = orgs.get_org(uow, room.org_id).invite_code
    pending = invite(uow, room.org_id, "new@example.test", InvitationStatus.PENDING)
    accepted = invite(uow, room.org_id, "joined@example.test", InvitationStatus.ACCEPTED)

    result = resets.reset_org(uow, room.org_id, actor=OPERATOR)

    assert result.invitations_revoked == 1
    assert invitation_statuses(uow, room.org_id) == {
        pending: InvitationStatus.REVOKED,
        accepted: InvitationStatus.ACCEPTED,
    }
    assert result.invite_code != old_code
    assert orgs.get_org(uow, room.org_id).invite_code == result.invite_code
