"""Users, organisations and members, on both engines.

Worked examples of signing up, opening an org and running its membership: who is a member,
with which role and seat, what removal does to credits and history, and how a member returns.
"""

from __future__ import annotations

import pytest

from creditpool.domain.amounts import credits
from creditpool.domain.errors import (
    AlreadyExists,
    AlreadyMember,
    InvalidInput,
    InvalidPolicy,
    MemberRemoved,
    NotFound,
    OwnerRequired,
    Unauthenticated,
)
from creditpool.domain.model import HoldStatus, MemberStatus, Role, Seat, TransferKind
from creditpool.domain.policies import SettingsChange
from creditpool.services import credits as credit_service
from creditpool.services import groups, holds, members, orgs, reports, usage, users
from creditpool.services.audit import audit
from creditpool.services.targets import Target
from creditpool.services.views import MemberView
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.clock import FakeClock
from tests.support.factories import OPERATOR, add_members, make_org, make_user

USAGE_KEY = "apikey:test"


def owner_of(uow: UnitOfWork, org_id: str) -> MemberView:
    """Return the org's one owner."""
    (owner,) = [m for m in members.list_members(uow, org_id) if m.role is Role.OWNER]
    return owner


def allot(uow: UnitOfWork, org_id: str, member_id: str, amount: str) -> None:
    credit_service.allocate_credits(
        uow, org_id, Target.members([member_id]), credits(amount), actor=OPERATOR
    )


# Users


def test_an_email_is_taken_whatever_its_case(uow: UnitOfWork) -> None:
    users.create_user(uow, email="Ada@Example.test", name="Ada")

    with pytest.raises(AlreadyExists):
        users.create_user(uow, email="ada@EXAMPLE.TEST", name="Another Ada")

    assert users.find_user(uow, "ADA@example.test").name == "Ada"


def test_a_password_under_eight_characters_is_refused(uow: UnitOfWork) -> None:
    with pytest.raises(InvalidInput):
        users.create_user(uow, email="short@example.test", name="Short", password="seven77")

    with pytest.raises(NotFound):
        users.find_user(uow, "short@example.test")
    # Eight characters is enough.
    users.create_user(uow, email="short@example.test", name="Short", password="eight888")


def test_authenticate_accepts_the_right_password_only(uow: UnitOfWork) -> None:
    ada = users.create_user(uow, email="ada@example.test", name="Ada", password="correct horse")

    assert users.authenticate(uow, email="ADA@example.test", password="correct horse").id == ada.id
    with pytest.raises(Unauthenticated):
        users.authenticate(uow, email="ada@example.test", password="correct horsE")
    with pytest.raises(Unauthenticated):
        users.authenticate(uow, email="nobody@example.test", password="correct horse")


def test_grant_operator_marks_the_user_as_operator(uow: UnitOfWork) -> None:
    user = make_user(uow)
    assert not user.is_operator

    users.grant_operator(uow, user.email.upper())

    assert users.find_user(uow, user.email).is_operator


# Organisations


def test_the_owner_becomes_a_licensed_member_with_role_owner(uow: UnitOfWork) -> None:
    owner_user = make_user(uow, "Teacher")

    org = orgs.create_org(uow, name="Class 3B", owner_user_id=owner_user.id, actor=OPERATOR)

    (owner,) = members.list_members(uow, org.id)
    assert (owner.user_id, owner.role, owner.seat, owner.status) == (
        owner_user.id,
        Role.OWNER,
        Seat.LICENSED,
        MemberStatus.ACTIVE,
    )
    assert [o.id for o in orgs.list_orgs(uow, user_id=owner_user.id)] == [org.id]


def test_a_new_org_has_the_documented_defaults(uow: UnitOfWork) -> None:
    org = make_org(uow)

    settings = orgs.get_org(uow, org.id).settings
    assert settings.returnable is True
    assert settings.auto_allocation.enabled is False
    assert settings.auto_allocation.bundle == credits("5")
    assert settings.auto_allocation.max_per_member == 0
    assert (
        settings.seat_rates.licensed,
        settings.seat_rates.unlicensed,
        settings.seat_rates.external,
    ) == (0, 0, 0)
    assert org.paused is False


def test_settings_given_at_creation_are_kept_and_the_rest_default(uow: UnitOfWork) -> None:
    chosen = SettingsChange(
        returnable=False,
        auto_enabled=True,
        auto_bundle=credits("2"),
        auto_max_per_member=credits("10"),
        rate_licensed=credits("1"),
    )

    settings = orgs.get_org(uow, make_org(uow, settings=chosen).id).settings

    assert settings.returnable is False
    assert settings.auto_allocation.enabled is True
    assert settings.auto_allocation.bundle == credits("2")
    assert settings.auto_allocation.max_per_member == credits("10")
    assert settings.seat_rates.licensed == credits("1")
    assert (settings.seat_rates.unlicensed, settings.seat_rates.external) == (0, 0)


def test_update_settings_of_one_part_keeps_the_rest(uow: UnitOfWork) -> None:
    org = make_org(
        uow,
        settings=SettingsChange(
            returnable=False, auto_enabled=True, auto_max_per_member=credits("20")
        ),
    )

    orgs.update_settings(
        uow, org.id, SettingsChange(rate_unlicensed=credits("0.1")), actor=OPERATOR
    )

    settings = orgs.get_org(uow, org.id).settings
    assert settings.seat_rates.unlicensed == credits("0.1")
    assert settings.returnable is False
    assert settings.auto_allocation.enabled is True
    assert settings.auto_allocation.bundle == credits("5")
    assert settings.auto_allocation.max_per_member == credits("20")
    assert (settings.seat_rates.licensed, settings.seat_rates.external) == (0, 0)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(SettingsChange(auto_bundle=0), id="bundle-zero"),
        # The bundle stays 5: a cap of 7 is not a multiple of it.
        pytest.param(SettingsChange(auto_max_per_member=credits("7")), id="cap-not-multiple"),
    ],
)
def test_an_invalid_policy_is_refused_and_changes_nothing(
    uow: UnitOfWork, change: SettingsChange
) -> None:
    org = make_org(uow, settings=SettingsChange(auto_max_per_member=credits("15")))
    before = orgs.get_org(uow, org.id).settings

    with pytest.raises(InvalidPolicy):
        orgs.update_settings(uow, org.id, change, actor=OPERATOR)

    assert orgs.get_org(uow, org.id).settings == before


def test_pausing_twice_is_harmless_and_nothing_burns_while_paused(
    uow: UnitOfWork, clock: FakeClock
) -> None:
    # 365 credits a year for the owner's licensed seat: 1 credit a day while running.
    org = make_org(uow, purchase="100", settings=SettingsChange(rate_licensed=credits("365")))

    orgs.set_paused(uow, org.id, paused=True, actor=OPERATOR)
    clock.advance(days=1)
    again = orgs.set_paused(uow, org.id, paused=True, actor=OPERATOR)
    clock.advance(days=1)
    resumed = orgs.set_paused(uow, org.id, paused=False, actor=OPERATOR)

    assert again.paused is True
    assert resumed.paused is False
    assert resumed.balance.available == credits("100")
    assert reports.list_transfers(uow, org.id, kind=TransferKind.METERING) == []
    clock.advance(days=1)
    assert reports.get_balance(uow, org.id).available == credits("99")


def test_rotate_invite_code_gives_a_new_code(uow: UnitOfWork) -> None:
    org = make_org(uow)

    code = orgs.rotate_invite_code(uow, org.id, actor=OPERATOR)

    assert code != org.invite_code
    assert orgs.get_org(uow, org.id).invite_code == code


def test_list_orgs_for_a_user_lists_only_its_active_memberships(uow: UnitOfWork) -> None:
    first, second, third = make_org(uow), make_org(uow), make_org(uow)
    user = make_user(uow)
    members.add_member(uow, first.id, user_id=user.id, actor=OPERATOR)
    left = members.add_member(uow, third.id, user_id=user.id, actor=OPERATOR)
    members.remove_member(uow, third.id, left.id, actor=OPERATOR)

    listed = orgs.list_orgs(uow, user_id=user.id)

    assert [org.id for org in listed] == [first.id]
    assert second.id not in {org.id for org in listed}


# Members


def test_add_member_makes_an_active_member_with_an_empty_wallet(uow: UnitOfWork) -> None:
    org = make_org(uow)
    user = make_user(uow, "Grace")

    member = members.add_member(
        uow, org.id, user_id=user.id, role=Role.MANAGER, seat=Seat.UNLICENSED, actor=OPERATOR
    )

    assert (member.user_id, member.name, member.role, member.seat, member.status) == (
        user.id,
        "Grace",
        Role.MANAGER,
        Seat.UNLICENSED,
        MemberStatus.ACTIVE,
    )
    assert (member.credits_balance, member.credits_allocated, member.credits_used) == (0, 0, 0)
    assert members.get_member(uow, org.id, member.id) == member


def test_an_active_member_added_again_is_refused(uow: UnitOfWork) -> None:
    org = make_org(uow)
    (member,) = add_members(uow, org.id, 1)

    with pytest.raises(AlreadyMember):
        members.add_member(uow, org.id, user_id=member.user_id, actor=OPERATOR)

    assert len(members.list_members(uow, org.id, status=None)) == 2  # the owner and this member


def test_removal_voids_open_holds_and_returns_the_wallet_when_returnable(
    uow: UnitOfWork,
) -> None:
    org = make_org(uow, purchase="100")
    (student,) = add_members(uow, org.id, 1)
    allot(uow, org.id, student.id, "10")
    hold = holds.place_hold(uow, org.id, student.id, credits("4"), actor=USAGE_KEY)

    removed = members.remove_member(uow, org.id, student.id, actor=OPERATOR)

    assert removed.status is MemberStatus.REMOVED
    assert (removed.credits_balance, removed.credits_held) == (0, 0)
    assert holds.get_hold(uow, org.id, hold.id).status is HoldStatus.VOIDED
    # All 10 allotted went back, the 4 that were held included.
    assert reports.get_balance(uow, org.id).available == credits("100")
    history = reports.list_transfers(uow, org.id, member_id=student.id)
    assert [(t.kind, t.amount) for t in history] == [
        (TransferKind.REVOCATION, credits("10")),
        (TransferKind.ALLOCATION, credits("10")),
    ]
    assert removed.credits_allocated == credits("10")
    assert audit(uow, org.id).clean


def test_removal_keeps_the_wallet_on_the_member_when_not_returnable(uow: UnitOfWork) -> None:
    org = make_org(uow, purchase="100", settings=SettingsChange(returnable=False))
    (student,) = add_members(uow, org.id, 1)
    allot(uow, org.id, student.id, "10")
    hold = holds.place_hold(uow, org.id, student.id, credits("3"), actor=USAGE_KEY)

    removed = members.remove_member(uow, org.id, student.id, actor=OPERATOR)

    assert holds.get_hold(uow, org.id, hold.id).status is HoldStatus.VOIDED
    assert (removed.credits_balance, removed.credits_held, removed.credits_available) == (
        credits("10"),
        0,
        credits("10"),
    )
    balance = reports.get_balance(uow, org.id)
    assert (balance.available, balance.allocated) == (credits("90"), credits("10"))
    assert audit(uow, org.id).clean


def test_the_owner_cannot_be_removed(uow: UnitOfWork) -> None:
    org = make_org(uow)
    owner = owner_of(uow, org.id)

    with pytest.raises(OwnerRequired):
        members.remove_member(uow, org.id, owner.id, actor=OPERATOR)

    assert members.get_member(uow, org.id, owner.id).status is MemberStatus.ACTIVE


def test_a_removed_member_who_comes_back_finds_its_id_groups_history_and_credits(
    uow: UnitOfWork,
) -> None:
    org = make_org(uow, purchase="100", settings=SettingsChange(returnable=False))
    (student,) = add_members(uow, org.id, 1, seat=Seat.UNLICENSED)
    group = groups.create_group(uow, org.id, "Monday class", actor=OPERATOR)
    groups.set_group_members(uow, org.id, group.id, [student.id])
    allot(uow, org.id, student.id, "10")
    usage.charge_usage(
        uow, org.id, student.id, credits("2.5"), metrics={"renders": 1}, actor=USAGE_KEY
    )
    members.remove_member(uow, org.id, student.id, actor=OPERATOR)

    back = members.add_member(uow, org.id, user_id=student.user_id, actor=OPERATOR)

    assert back.id == student.id
    assert (back.status, back.role, back.seat) == (
        MemberStatus.ACTIVE,
        Role.MEMBER,
        Seat.LICENSED,
    )
    assert back.groups == [group.id]
    assert back.credits_available == credits("7.5")  # 10 allotted - 2.5 used
    assert (back.credits_allocated, back.credits_used) == (credits("10"), credits("2.5"))
    assert back.usage == {"renders": 1}
    assert len(reports.list_transfers(uow, org.id, member_id=student.id)) == 2
    assert len(members.list_members(uow, org.id, status=None)) == 2
    assert audit(uow, org.id).clean


def test_a_seat_change_moves_the_burn_rate_at_once(uow: UnitOfWork) -> None:
    org = make_org(uow, settings=SettingsChange(rate_licensed=credits("1")))
    (student,) = add_members(uow, org.id, 1)
    # Owner and student licensed: 2 credits a year.
    assert reports.get_balance(uow, org.id).burn_rate_per_year == credits("2")

    changed = members.change_member(uow, org.id, student.id, seat=Seat.EXTERNAL, actor=OPERATOR)

    assert changed.seat is Seat.EXTERNAL
    assert reports.get_balance(uow, org.id).burn_rate_per_year == credits("1")
    assert audit(uow, org.id).clean


def test_role_changes_and_making_another_member_owner_hands_the_org_over(uow: UnitOfWork) -> None:
    org = make_org(uow)
    old_owner = owner_of(uow, org.id)
    (successor,) = add_members(uow, org.id, 1)
    promoted = members.change_member(uow, org.id, successor.id, role=Role.MANAGER, actor=OPERATOR)
    assert promoted.role is Role.MANAGER

    members.change_member(uow, org.id, successor.id, role=Role.OWNER, actor=OPERATOR)

    assert owner_of(uow, org.id).id == successor.id
    assert members.get_member(uow, org.id, old_owner.id).role is Role.MANAGER


def test_the_owner_cannot_demote_itself(uow: UnitOfWork) -> None:
    org = make_org(uow)
    owner = owner_of(uow, org.id)

    with pytest.raises(OwnerRequired):
        members.change_member(uow, org.id, owner.id, role=Role.MANAGER, actor=OPERATOR)

    assert owner_of(uow, org.id).id == owner.id


def test_changing_a_removed_member_is_refused(uow: UnitOfWork) -> None:
    org = make_org(uow)
    (student,) = add_members(uow, org.id, 1)
    members.remove_member(uow, org.id, student.id, actor=OPERATOR)

    with pytest.raises(MemberRemoved):
        members.change_member(uow, org.id, student.id, seat=Seat.UNLICENSED, actor=OPERATOR)

    assert members.get_member(uow, org.id, student.id).seat is Seat.LICENSED


def test_list_members_by_status(uow: UnitOfWork) -> None:
    org = make_org(uow)
    owner = owner_of(uow, org.id)
    staying, leaving = add_members(uow, org.id, 2)
    members.remove_member(uow, org.id, leaving.id, actor=OPERATOR)

    def ids(status: MemberStatus | None) -> set[str]:
        return {m.id for m in members.list_members(uow, org.id, status=status)}

    assert ids(MemberStatus.ACTIVE) == {owner.id, staying.id}
    assert ids(MemberStatus.REMOVED) == {leaving.id}
    assert ids(None) == {owner.id, staying.id, leaving.id}


def test_list_members_by_group(uow: UnitOfWork) -> None:
    org = make_org(uow)
    in_class, _outside = add_members(uow, org.id, 2)
    group = groups.create_group(uow, org.id, "Tuesday", actor=OPERATOR)
    groups.set_group_members(uow, org.id, group.id, [in_class.id])

    listed = members.list_members(uow, org.id, group_id=group.id)

    assert [m.id for m in listed] == [in_class.id]


def test_one_org_never_reaches_another_orgs_rows(uow: UnitOfWork) -> None:
    ours = make_org(uow, name="Ours", purchase="50")
    theirs = make_org(uow, name="Theirs", purchase="50")
    (their_member,) = add_members(uow, theirs.id, 1)
    (our_member,) = add_members(uow, ours.id, 1)
    their_group = groups.create_group(uow, theirs.id, "Their class", actor=OPERATOR)
    allot(uow, theirs.id, their_member.id, "10")
    their_hold = holds.place_hold(uow, theirs.id, their_member.id, credits("1"), actor=USAGE_KEY)

    with pytest.raises(NotFound):
        members.get_member(uow, ours.id, their_member.id)
    with pytest.raises(NotFound):
        members.remove_member(uow, ours.id, their_member.id, actor=OPERATOR)
    with pytest.raises(NotFound):
        members.list_members(uow, ours.id, group_id=their_group.id)
    with pytest.raises(NotFound):
        groups.rename_group(uow, ours.id, their_group.id, "Taken over")
    with pytest.raises(NotFound):
        holds.get_hold(uow, ours.id, their_hold.id)
    with pytest.raises(NotFound):
        holds.void_hold(uow, ours.id, their_hold.id, actor=USAGE_KEY)
    with pytest.raises(NotFound):
        credit_service.allocate_credits(
            uow, ours.id, Target.members([their_member.id]), credits("1"), actor=OPERATOR
        )
    our_transfers = {t.id for t in reports.list_transfers(uow, ours.id)}
    their_transfers = {t.id for t in reports.list_transfers(uow, theirs.id)}
    assert our_transfers
    assert their_transfers
    assert not our_transfers & their_transfers
    assert reports.list_transfers(uow, ours.id, member_id=their_member.id) == []
    # Nothing of theirs moved.
    assert holds.get_hold(uow, theirs.id, their_hold.id).status is HoldStatus.PENDING
    assert members.get_member(uow, theirs.id, their_member.id).status is MemberStatus.ACTIVE
    assert groups.list_groups(uow, ours.id) == []
    assert our_member.id not in {m.id for m in members.list_members(uow, theirs.id)}


def test_restoring_a_removed_member_keeps_its_role_seat_history_and_burn(uow: UnitOfWork) -> None:
    rates = SettingsChange(rate_licensed=credits("1"), rate_unlicensed=credits("0.1"))
    org = make_org(uow, purchase="10", settings=rates)
    (guest,) = add_members(uow, org.id, 1, seat=Seat.EXTERNAL, role=Role.MANAGER)
    rate_before = reports.get_balance(uow, org.id).burn_rate_per_year
    members.remove_member(uow, org.id, guest.id, actor=OPERATOR)

    back = members.restore_member(uow, org.id, guest.id, actor=OPERATOR)

    assert (back.id, back.status, back.role, back.seat) == (
        guest.id,
        MemberStatus.ACTIVE,
        Role.MANAGER,
        Seat.EXTERNAL,
    )
    assert reports.get_balance(uow, org.id).burn_rate_per_year == rate_before
    with pytest.raises(AlreadyMember):
        members.restore_member(uow, org.id, guest.id, actor=OPERATOR)
