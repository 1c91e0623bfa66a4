"""A parent's list of children on both engines: each child's view, read for all of them at once,
is what `org_view` gives it alone, and the list costs as many statements for 20 children as
for one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, event, select

from creditpool.domain.amounts import credits
from creditpool.domain.policies import SettingsChange
from creditpool.services import credits as credit_service
from creditpool.services import families, orgs, usage
from creditpool.services.targets import Target
from creditpool.services.views import OrgView, org_view
from creditpool.storage.schema import Org
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.clock import FakeClock
from tests.support.factories import OPERATOR, add_members, make_org, make_user

MACHINE = "api-key:test"
# 365 credits a year per licensed seat: each seat burns one credit a day.
BURNING = SettingsChange(rate_licensed=credits("365"))


def child_of(uow: UnitOfWork, parent_id: str, name: str, *, burning: bool = True) -> OrgView:
    owner = make_user(uow, f"Owner of {name}")
    return families.create_child(
        uow,
        parent_id,
        name=name,
        owner_user_id=owner.id,
        settings=BURNING if burning else None,
        actor=OPERATOR,
    )


def fund(uow: UnitOfWork, parent_id: str, child_id: str, amount: str) -> None:
    families.allot_to_child(uow, parent_id, child_id, credits(amount), actor=OPERATOR)


def spend(uow: UnitOfWork, org_id: str, amount: str, metrics: dict[str, int]) -> None:
    """Give two new members wallets of `amount` each and charge the first for half of it."""
    people = add_members(uow, org_id, 2)
    credit_service.allocate_credits(
        uow, org_id, Target.members([p.id for p in people]), credits(amount), actor=OPERATOR
    )
    half = credits(amount) // 2
    usage.charge_usage(uow, org_id, people[0].id, half, metrics=metrics, actor=MACHINE)


def one_by_one(uow: UnitOfWork, parent_id: str) -> list[OrgView]:
    """The parent's children by name, each through `org_view`, as the list read them before."""
    with uow:
        rows = uow.session.scalars(
            select(Org).where(Org.parent_id == parent_id).order_by(Org.name, Org.id)
        )
        return [org_view(uow, row) for row in rows]


def test_each_listed_child_is_what_org_view_gives_it(uow: UnitOfWork, clock: FakeClock) -> None:
    district = make_org(uow, name="District", purchase="1000", settings=BURNING)
    north = child_of(uow, district.id, "North school")
    annex = child_of(uow, district.id, "Annex school", burning=False)
    quiet = child_of(uow, district.id, "Quiet school")  # nothing given, nothing below
    classes = [child_of(uow, north.id, name) for name in ("Class 4B", "Class 5A")]
    fund(uow, district.id, north.id, "300")
    fund(uow, district.id, annex.id, "50")
    for klass in classes:
        fund(uow, north.id, klass.id, "60")
    spend(uow, north.id, "10", {"renders": 3})
    spend(uow, classes[0].id, "8", {"renders": 2, "frames": 40})
    spend(uow, classes[1].id, "6", {"frames": 7, "minutes": 5})
    spend(uow, annex.id, "4", {"renders": 1})
    # A paused class burns nothing; its siblings and every other pool burn for ten days.
    orgs.set_paused(uow, classes[1].id, paused=True, actor=OPERATOR)
    clock.advance(days=10)

    listed = families.list_children(uow, district.id)
    expected = one_by_one(uow, district.id)

    assert [c.name for c in listed] == ["Annex school", "North school", "Quiet school"]
    assert listed == expected
    north_view = listed[1]
    # The figures compared are not all empty: burn, wallets, usage and a roll-up are there.
    assert north_view.balance.metered > 0
    assert north_view.balance.allocated == credits("15")
    assert north_view.rollup.orgs == 3
    assert north_view.rollup.usage == {"renders": 5, "frames": 47, "minutes": 5}
    assert north_view.usage == {"renders": 3}
    assert listed[2].rollup.orgs == 1
    assert listed[2].balance.available == 0
    # A page of the list, and the children of a school (the third level, with none below).
    assert families.list_children(uow, district.id, after=annex.id, limit=1) == expected[1:2]
    assert families.list_children(uow, north.id) == one_by_one(uow, north.id)
    assert quiet.id in {c.id for c in listed}


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[str]]:
    """Every statement the engine sends while the test runs."""
    sent: list[str] = []

    def note(*args: object) -> None:
        sent.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", note)
    yield sent
    event.remove(engine, "before_cursor_execute", note)


def test_listing_20_children_costs_the_statements_of_listing_one(
    uow: UnitOfWork, clock: FakeClock, statements: list[str]
) -> None:
    counts = {}
    for size in (1, 20):
        parent = make_org(uow, name=f"District of {size}", purchase="1000", settings=BURNING)
        for number in range(size):
            school = child_of(uow, parent.id, f"School {number:02}")
            klass = child_of(uow, school.id, f"Class {number:02}")
            fund(uow, parent.id, school.id, "20")
            fund(uow, school.id, klass.id, "10")
            spend(uow, klass.id, "2", {"renders": number + 1})
        clock.advance(days=1)
        statements.clear()
        listed = families.list_children(uow, parent.id)
        counts[size] = len(statements)
        assert len(listed) == size
        assert all(child.rollup.orgs == 2 and child.rollup.usage for child in listed)

    assert counts[20] == counts[1], statements
