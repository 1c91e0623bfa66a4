"""The class manager's roster on both engines: search, each filter, each order, pages, and
"every matching member" as one all-or-nothing batch."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from creditpool.domain.amounts import credits
from creditpool.domain.errors import (
    InsufficientCredits,
    InvalidInput,
    NotFound,
    PreviewOutdated,
)
from creditpool.domain.model import MemberStatus, Role, Seat
from creditpool.services import audit, groups, members, reports, roster, usage
from creditpool.services.credits import allocate_credits, revoke_credits
from creditpool.services.roster import RosterFilter, RosterSort
from creditpool.services.targets import Target
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.factories import OPERATOR, make_org, make_user

NAMES = ["Zoe Quist", "ada lovelace", "Ben Adams", "Cleo Park", "Dev Rao", "Emma Stone"]


@dataclass(frozen=True)
class Class:
    org_id: str
    ids: dict[str, str]  # member id by first name (the owner is "Owner")
    group_id: str


def a_class(uow: UnitOfWork) -> Class:
    """An org of six people besides its owner, with varied seats, roles, figures and usage:
    Zoe is a manager, Emma removed, Ben and Cleo in the group, Dev external."""
    org = make_org(uow, purchase="100")
    ids = {"Owner": roster.list_roster(uow, org.id).members[0].id}
    for number, name in enumerate(NAMES):
        user = make_user(uow, name, email=f"{name.split()[0].lower()}{number}@school.test")
        seat = Seat.EXTERNAL if name.startswith("Dev") else Seat.LICENSED
        role = Role.MANAGER if name.startswith("Zoe") else Role.MEMBER
        added = members.add_member(
            uow, org.id, user_id=user.id, role=role, seat=seat, actor=OPERATOR
        )
        ids[name.split()[0].capitalize()] = added.id
    # Allotted: Ada 1, Ben 2, Cleo 3, Dev 4; Ada used 0.5 of hers (1 render), Cleo 2 (5).
    for credit, name in enumerate(("Ada", "Ben", "Cleo", "Dev"), start=1):
        allocate_credits(
            uow, org.id, Target.members([ids[name]]), credits(str(credit)), actor=OPERATOR
        )
    usage.charge_usage(
        uow, org.id, ids["Ada"], credits("0.5"), metrics={"renders": 1}, actor=OPERATOR
    )
    usage.charge_usage(
        uow, org.id, ids["Cleo"], credits("2"), metrics={"renders": 5}, actor=OPERATOR
    )
    group = groups.create_group(uow, org.id, "Tuesday", actor=OPERATOR)
    groups.set_group_members(uow, org.id, group.id, [ids["Ben"], ids["Cleo"]])
    members.remove_member(uow, org.id, ids["Emma"], actor=OPERATOR)
    return Class(org.id, ids, group.id)


def names(
    uow: UnitOfWork,
    klass: Class,
    chosen: RosterFilter | None = None,
    order: RosterSort | None = None,
) -> list[str]:
    page = roster.list_roster(
        uow, klass.org_id, chosen or RosterFilter(), order or RosterSort(), limit=50
    )
    assert page.total == len(page.members)
    return [member.name.split()[0].capitalize() for member in page.members]


@pytest.mark.parametrize("small_org", [20_000, 0], ids=["member-first", "join"])
def test_search_finds_names_and_addresses_whatever_their_case(
    uow: UnitOfWork, monkeypatch: pytest.MonkeyPatch, small_org: int
) -> None:
    # A small org's search reads each member's user; a big one's joins them: the same answers.
    monkeypatch.setattr(roster, "SMALL_ORG", small_org)
    klass = a_class(uow)
    assert names(uow, klass, RosterFilter(search="LOVE")) == ["Ada"]
    assert names(uow, klass, RosterFilter(search="ben2@")) == ["Ben"]
    assert names(uow, klass, RosterFilter(search="ad")) == ["Ada", "Ben"]
    # LIKE's wildcards are searched for as themselves.
    assert names(uow, klass, RosterFilter(search="%")) == []
    assert names(uow, klass, RosterFilter(search="_")) == []


def test_each_filter_narrows_the_list(uow: UnitOfWork) -> None:
    klass = a_class(uow)
    assert names(uow, klass) == ["Owner", "Zoe", "Ada", "Ben", "Cleo", "Dev"]
    assert names(uow, klass, RosterFilter(group_id=klass.group_id)) == ["Ben", "Cleo"]
    assert names(uow, klass, RosterFilter(seat=Seat.EXTERNAL)) == ["Dev"]
    assert names(uow, klass, RosterFilter(role=Role.MANAGER)) == ["Zoe"]
    assert names(uow, klass, RosterFilter(status=MemberStatus.REMOVED)) == ["Emma"]
    both = RosterFilter(group_id=klass.group_id, search="cleo")
    assert names(uow, klass, both) == ["Cleo"]
    with pytest.raises(NotFound):
        roster.list_roster(uow, klass.org_id, RosterFilter(group_id="grp_unknown"))
    with pytest.raises(InvalidInput):
        roster.list_roster(uow, klass.org_id, RosterFilter(search="x" * 201))


@pytest.mark.parametrize(
    ("key", "ascending"),
    [
        ("joined", ["Owner", "Zoe", "Ada", "Ben", "Cleo", "Dev"]),
        ("name", ["Ada", "Ben", "Cleo", "Dev", "Owner", "Zoe"]),
        ("email", ["Ada", "Ben", "Cleo", "Dev", "Owner", "Zoe"]),
        # Available: Ada 0.5, Ben 2, Cleo 1, Dev 4; ties (0) by id.
        ("available", ["Owner", "Zoe", "Ada", "Cleo", "Ben", "Dev"]),
        ("allocated", ["Owner", "Zoe", "Ada", "Ben", "Cleo", "Dev"]),
        ("used", ["Owner", "Zoe", "Ben", "Dev", "Ada", "Cleo"]),
        ("metric:renders", ["Owner", "Zoe", "Ben", "Dev", "Ada", "Cleo"]),
    ],
)
def test_each_order_sorts_both_ways_with_ties_by_id(
    uow: UnitOfWork, key: str, ascending: list[str]
) -> None:
    klass = a_class(uow)
    assert names(uow, klass, order=RosterSort(key)) == ascending
    assert names(uow, klass, order=RosterSort(key, descending=True)) == ascending[::-1]


def test_an_unknown_order_is_refused(uow: UnitOfWork) -> None:
    klass = a_class(uow)
    for key in ("balance", "metric:", "id; drop table members"):
        with pytest.raises(InvalidInput):
            roster.list_roster(uow, klass.org_id, RosterFilter(), RosterSort(key))


def test_pages_cover_every_match_once_and_count_them_all(uow: UnitOfWork) -> None:
    klass = a_class(uow)
    order = RosterSort("name", descending=True)
    seen = []
    for offset in range(0, 6, 4):
        page = roster.list_roster(uow, klass.org_id, RosterFilter(), order, offset=offset, limit=4)
        assert page.total == 6
        seen += [member.id for member in page.members]
    assert len(seen) == len(set(seen)) == 6
    assert roster.count_active(uow, klass.org_id) == 6
    assert roster.metric_names(uow, klass.org_id) == ["renders"]
    with pytest.raises(InvalidInput):
        roster.list_roster(uow, klass.org_id, limit=0)


def test_every_matching_member_gets_credits_in_one_batch(uow: UnitOfWork) -> None:
    klass = a_class(uow)
    matching = RosterFilter(seat=Seat.LICENSED)  # all but Dev (external) and Emma (removed)
    target = Target.filtered(matching, expected=5)

    batch = allocate_credits(uow, klass.org_id, target, credits("2"), actor=OPERATOR)

    assert batch.total == credits("10")
    assert sorted(m.name.split()[0].capitalize() for m in batch.members) == sorted(
        ["Ada", "Ben", "Cleo", "Owner", "Zoe"]
    )
    dev = roster.list_roster(uow, klass.org_id, RosterFilter(search="dev")).members[0]
    assert dev.credits_allocated == credits("4")  # untouched
    assert audit.audit(uow, klass.org_id).clean


def test_a_refusal_for_one_matching_member_moves_nothing(uow: UnitOfWork) -> None:
    klass = a_class(uow)
    before = reports.get_balance(uow, klass.org_id)
    in_group = RosterFilter(group_id=klass.group_id)  # Ben has 2, Cleo 1 available

    with pytest.raises(InsufficientCredits):
        revoke_credits(uow, klass.org_id, Target.filtered(in_group), credits("1.5"), actor=OPERATOR)
    with pytest.raises(InsufficientCredits):  # 5 matching x 30 > the pool's 90
        allocate_credits(
            uow, klass.org_id, Target.filtered(RosterFilter()), credits("30"), actor=OPERATOR
        )

    after = reports.get_balance(uow, klass.org_id)
    assert (after.available, after.allocated) == (before.available, before.allocated)
    figures = {m.name: m.credits_available for m in roster.list_roster(uow, klass.org_id).members}
    assert figures["Ben Adams"] == credits("2")
    assert figures["Cleo Park"] == credits("1")


def test_a_filter_that_matches_other_members_now_is_refused(uow: UnitOfWork) -> None:
    klass = a_class(uow)
    in_group = RosterFilter(group_id=klass.group_id)
    shown = roster.list_roster(uow, klass.org_id, in_group).total
    groups.set_group_members(uow, klass.org_id, klass.group_id, [klass.ids["Ben"]])

    with pytest.raises(PreviewOutdated):
        allocate_credits(
            uow,
            klass.org_id,
            Target.filtered(in_group, expected=shown),
            credits("1"),
            actor=OPERATOR,
        )
    removed = RosterFilter(status=MemberStatus.REMOVED)
    with pytest.raises(InvalidInput):
        allocate_credits(uow, klass.org_id, Target.filtered(removed), credits("1"), actor=OPERATOR)
    assert reports.get_balance(uow, klass.org_id).available == credits("90")
