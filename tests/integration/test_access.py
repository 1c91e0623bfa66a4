"""What a caller may see and do beyond one permission check (services.access): the orgs it may
list, whether it governs, and which roles it may give or take."""

from __future__ import annotations

import pytest

from creditpool.domain.model import Role
from creditpool.services import access, members
from creditpool.services.auth import Grant, Principal
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.factories import OPERATOR, add_members, make_org


def test_each_caller_lists_the_orgs_it_may(uow: UnitOfWork) -> None:
    mine, theirs, joined = make_org(uow), make_org(uow), make_org(uow, name="Joined")
    person = add_members(uow, theirs.id, 1, role=Role.MANAGER)[0]
    members.add_member(uow, joined.id, user_id=person.user_id, actor=OPERATOR)  # a member only

    as_manager = access.orgs_listed_for(uow, Principal(actor="user", user_id=person.user_id))
    assert [org.id for org in as_manager] == [theirs.id]
    assert as_manager[0].invite_code == theirs.invite_code  # a manager may invite

    key = Principal(actor="key", org_id=mine.id, scopes=frozenset({"usage"}))
    as_key = access.orgs_listed_for(uow, key)
    assert [org.id for org in as_key] == [mine.id]
    assert as_key[0].invite_code is None  # a key reads only what charging needs

    everything = access.orgs_listed_for(uow, Principal(actor=OPERATOR, operator=True), limit=500)
    assert {mine.id, theirs.id, joined.id} <= {org.id for org in everything}


@pytest.mark.parametrize(
    ("grant", "governs", "handles"),
    [
        (Grant("user:o", "m", Role.OWNER), True, {Role.MEMBER, Role.MANAGER}),
        (Grant("user:m", "m", Role.MANAGER), False, {Role.MEMBER}),
        (Grant("user:x", "m", Role.MEMBER), False, set()),
        (Grant(OPERATOR), True, {Role.MEMBER, Role.MANAGER}),
        (Grant("key:k", scopes=frozenset({"usage"})), False, set()),
    ],
    ids=["owner", "manager", "member", "operator", "key"],
)
def test_who_governs_and_which_roles_each_caller_handles(
    grant: Grant, governs: bool, handles: set[Role]
) -> None:
    assert access.may_govern(grant) is governs
    assert access.roles_handled_by(grant) == handles


def test_owners_and_managers_run_the_org_members_do_not() -> None:
    assert [role for role in Role if access.may_manage(role)] == [Role.OWNER, Role.MANAGER]
