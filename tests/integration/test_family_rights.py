"""Rights that flow down a family of orgs and never up (services.auth, domain/roles.py).

The family: a district at the top, a school under it, two classes under the school. The owner
and managers of an org act in each descendant as that descendant's managers do (a grant with
role manager and no member id), never as its owner; members of an ancestor gain nothing below;
nobody gains anything above. Each check runs through both ways a caller is authorized: the
bearer token's one query (the API) and a signed-in user's principal (the pages).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine, event

from creditpool.domain.errors import CreditpoolError, Forbidden, InviteInvalid, NotFound
from creditpool.domain.model import Role
from creditpool.domain.roles import Permission
from creditpool.services import access, auth, families, invitations, mail, members, orgs, users
from creditpool.services.auth import Grant, Principal
from creditpool.services.member_import import start_import
from creditpool.services.users import UserView
from creditpool.services.views import MemberView, OrgView
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.factories import OPERATOR, add_members, make_user

PASSWORD = "a long enough password"
PUBLIC_URL = "https://credits.example.test"


_numbers = itertools.count(1)


def _person(uow: UnitOfWork, name: str) -> UserView:
    """A new person with a password (for personal tokens)."""
    email = f"{name.replace(' ', '.')}.{next(_numbers)}@family.example.test"
    return users.create_user(uow, email=email, name=name, password=PASSWORD)


def _org(uow: UnitOfWork, name: str, owner: UserView, parent: OrgView | None) -> OrgView:
    """An org owned by `owner`, at the top or under `parent`."""
    if parent is None:
        return orgs.create_org(uow, name=name, owner_user_id=owner.id, actor=OPERATOR)
    return families.create_child(uow, parent.id, name=name, owner_user_id=owner.id, actor=OPERATOR)


@dataclass
class Family:
    """district ← school ← class and its sibling, with their people."""

    district: OrgView
    school: OrgView
    klass: OrgView
    sibling: OrgView
    people: dict[str, UserView]  # "district owner", "school manager", "class member"…
    memberships: dict[str, MemberView]  # the same people's memberships (not the owners')
    students: list[MemberView]  # the class's two students


@pytest.fixture
def family(uow: UnitOfWork) -> Family:
    people = {
        f"{org} {role}": _person(uow, f"{org} {role}")
        for org in ("district", "school", "class")
        for role in ("owner", "manager", "member")
    }
    people["sibling manager"] = _person(uow, "sibling manager")
    district = _org(uow, "District", people["district owner"], None)
    school = _org(uow, "School", people["school owner"], district)
    klass = _org(uow, "Class 1", people["class owner"], school)
    sibling = _org(uow, "Class 2", _person(uow, "sibling owner"), school)
    memberships = {}
    for org, label in ((district, "district"), (school, "school"), (klass, "class")):
        for role in (Role.MANAGER, Role.MEMBER):
            person = people[f"{label} {role}"]
            memberships[f"{label} {role}"] = members.add_member(
                uow, org.id, user_id=person.id, role=role, actor=OPERATOR
            )
    memberships["sibling manager"] = members.add_member(
        uow, sibling.id, user_id=people["sibling manager"].id, role=Role.MANAGER, actor=OPERATOR
    )
    students = add_members(uow, klass.id, 2)
    return Family(district, school, klass, sibling, people, memberships, students)


def _token(uow: UnitOfWork, user: UserView) -> str:
    return auth.issue_personal_token(uow, email=user.email, password=PASSWORD).secret


def _both_ways(
    uow: UnitOfWork,
    user: UserView,
    org: OrgView,
    permission: Permission,
    *,
    own_member_id: str | None = None,
) -> Grant | type[CreditpoolError]:
    """The grant (or the refusal's class) through a bearer token and through a signed-in
    principal; the two must agree."""
    outcomes: list[Grant | type[CreditpoolError]] = []
    token = _token(uow, user)
    principal = Principal(actor=f"user:{user.id}", user_id=user.id)
    for attempt in (
        lambda: auth.authorize_bearer(
            uow,
            token,
            org.id,
            permission,
            own_member_id=own_member_id,
            configured_operator_key=None,
        ),
        lambda: auth.authorize(uow, principal, org.id, permission, own_member_id=own_member_id),
    ):
        try:
            outcomes.append(attempt())
        except (NotFound, Forbidden) as refusal:
            outcomes.append(type(refusal))
    assert outcomes[0] == outcomes[1], outcomes
    return outcomes[0]


ANCESTORS_OF = {"school": ("district",), "class": ("district", "school")}


@pytest.mark.parametrize("org", ["school", "class"])
def test_the_owner_and_managers_of_every_ancestor_act_below_as_managers(
    uow: UnitOfWork, family: Family, org: str
) -> None:
    target = getattr(family, "klass" if org == "class" else org)
    student = family.students[0].id if org == "class" else None
    for ancestor in ANCESTORS_OF[org]:
        for role in ("owner", "manager"):
            user = family.people[f"{ancestor} {role}"]
            expected = Grant(f"user:{user.id}", None, Role.MANAGER)
            for permission in (Permission.MANAGE, Permission.READ, Permission.READ_OWN):
                assert _both_ways(uow, user, target, permission) == expected
            if student is not None:
                # Another's wallet is reading the org: theirs to read as the class's managers.
                seen = _both_ways(uow, user, target, Permission.READ_OWN, own_member_id=student)
                assert seen == expected
            # Never the owner's: settings, pause, keys, reset and roles stay below.
            assert _both_ways(uow, user, target, Permission.GOVERN) is Forbidden
            assert _both_ways(uow, user, target, Permission.CHARGE) is Forbidden
            assert _both_ways(uow, user, target, Permission.OPERATE) is Forbidden


def test_nobody_gains_a_right_above_and_members_of_an_ancestor_none_below(
    uow: UnitOfWork, family: Family
) -> None:
    people = family.people
    strangers = [
        # Up: a class's people in its school and district, a school's in the district.
        *((people[f"class {role}"], family.school) for role in ("owner", "manager", "member")),
        *((people[f"class {role}"], family.district) for role in ("owner", "manager", "member")),
        *((people[f"school {role}"], family.district) for role in ("owner", "manager", "member")),
        # Down, for members of an ancestor: nothing.
        (people["district member"], family.school),
        (people["district member"], family.klass),
        (people["school member"], family.klass),
        # Across: a sibling's manager in the class, the class's owner in the sibling.
        (people["sibling manager"], family.klass),
        (people["class owner"], family.sibling),
    ]
    for user, org in strangers:
        for permission in Permission:
            outcome = _both_ways(uow, user, org, permission)
            assert outcome is NotFound, (user.name, org.name, permission, outcome)


def test_a_member_of_a_class_who_manages_its_school_manages_the_class_but_owns_nothing_there(
    uow: UnitOfWork, family: Family
) -> None:
    manager = family.people["school manager"]
    mine = members.add_member(uow, family.klass.id, user_id=manager.id, actor=OPERATOR)
    user_id = f"user:{manager.id}"
    # Its own wallet it reads as the member it is: its member id comes with that grant.
    assert _both_ways(
        uow, manager, family.klass, Permission.READ_OWN, own_member_id=mine.id
    ) == Grant(user_id, mine.id, Role.MEMBER)
    # Managing is the school's right flowing down: no member id, so nothing "of one's own".
    assert _both_ways(uow, manager, family.klass, Permission.MANAGE) == Grant(
        user_id, None, Role.MANAGER
    )
    assert _both_ways(uow, manager, family.klass, Permission.GOVERN) is Forbidden


def test_a_right_flows_down_only_while_its_holder_stands_above(
    uow: UnitOfWork, family: Family
) -> None:
    manager = family.people["district manager"]
    membership = family.memberships["district manager"]
    assert isinstance(_both_ways(uow, manager, family.klass, Permission.MANAGE), Grant)
    members.change_member(uow, family.district.id, membership.id, role=Role.MEMBER, actor=OPERATOR)
    assert _both_ways(uow, manager, family.klass, Permission.MANAGE) is NotFound
    members.remove_member(uow, family.district.id, membership.id, actor=OPERATOR)
    assert _both_ways(uow, manager, family.school, Permission.READ) is NotFound


def test_an_org_key_of_a_parent_knows_nothing_of_its_children(
    uow: UnitOfWork, family: Family
) -> None:
    issued = auth.create_api_key(
        uow, family.school.id, name="farm", scopes=["usage"], actor=OPERATOR
    )
    for org in (family.klass, family.district):
        with pytest.raises(NotFound):
            auth.authorize_bearer(
                uow, issued.secret, org.id, Permission.READ, configured_operator_key=None
            )


def test_an_ancestors_manager_stands_for_invitations_and_imports_as_a_manager(
    uow: UnitOfWork, family: Family
) -> None:
    manager = family.people["district manager"]
    actor = f"user:{manager.id}"
    member = f"user:{family.people['district member'].id}"
    with uow:
        assert auth.standing_of(uow, family.klass.id, actor) == Grant(actor, None, Role.MANAGER)
        assert auth.standing_of(uow, family.klass.id, member) is None
        # Up, a child's owner stands nowhere.
        owner = f"user:{family.people['class owner'].id}"
        assert auth.standing_of(uow, family.school.id, owner) is None
    assert (
        start_import(
            uow, family.klass.id, by_email=manager.email, public_url=PUBLIC_URL
        ).caller_role
        is Role.MANAGER
    )
    with pytest.raises(Forbidden):
        start_import(
            uow,
            family.district.id,
            by_email=family.people["class owner"].email,
            public_url=PUBLIC_URL,
        )

    # Invited by the district's manager, a person joins the class while that manager stands;
    # once it no longer manages the district, its invitation is void.
    kept, voided = make_user(uow), make_user(uow)
    invitations.invite_by_email(
        uow,
        family.klass.id,
        [kept.email, voided.email],
        public_url=PUBLIC_URL,
        actor=actor,
        caller_role=Role.MANAGER,
    )
    token = {person.id: _invitation_token(uow, person.email) for person in (kept, voided)}
    joined = invitations.accept_invitation(uow, token[kept.id], user_id=kept.id)
    assert joined.role is Role.MEMBER
    membership = family.memberships["district manager"]
    members.remove_member(uow, family.district.id, membership.id, actor=OPERATOR)
    with pytest.raises(InviteInvalid):
        invitations.accept_invitation(uow, token[voided.id], user_id=voided.id)


def _invitation_token(uow: UnitOfWork, email: str) -> str:
    _, body, _ = mail.outbox_for(uow, email)[-1]
    found = re.search(r"/invitations/(\S+)", body)
    assert found is not None, body
    return found.group(1)


@pytest.fixture
def selects(engine: Engine) -> Iterator[list[str]]:
    """The SELECT statements the engine runs while the test does."""
    seen: list[str] = []

    def record(*args: object) -> None:
        statement = str(args[2])
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


def test_the_ancestors_are_read_only_when_the_callers_own_standing_falls_short(
    uow: UnitOfWork, family: Family, selects: list[str]
) -> None:
    people = family.people
    tokens = {name: _token(uow, people[name]) for name in ("class manager", "district owner")}
    cases = [
        # An org at the top: its manager costs the one query, its stranger too.
        ("district owner", family.district, Permission.MANAGE, 1, Grant),
        ("class manager", family.district, Permission.READ, 1, NotFound),
        # A child whose own manager calls: the one query.
        ("class manager", family.klass, Permission.MANAGE, 1, Grant),
        # A child's ancestor's owner: its own standing falls short, the ancestors are read.
        ("district owner", family.klass, Permission.MANAGE, 2, Grant),
    ]
    for name, org, permission, queries, outcome in cases:
        selects.clear()
        try:
            seen: object = auth.authorize_bearer(
                uow, tokens[name], org.id, permission, configured_operator_key=None
            )
        except NotFound as refusal:
            seen = refusal
        assert isinstance(seen, outcome), (name, org.name, seen)
        assert len(selects) == queries, (name, org.name, selects)


def test_the_orgs_a_person_lists_are_those_it_belongs_to_descendants_come_from_their_parent(
    uow: UnitOfWork, family: Family
) -> None:
    manager = family.people["district manager"]
    listed = access.orgs_listed_for(uow, Principal(actor=f"user:{manager.id}", user_id=manager.id))
    assert [org.id for org in listed] == [family.district.id]
    # The school is reached from the district's children, and the classes from the school's.
    assert [org.id for org in families.list_children(uow, family.district.id)] == [family.school.id]
