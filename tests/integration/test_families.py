"""Pools inside pools on both engines: a district funds a school and the school a class.

Each org keeps its own ledger; a move between a parent's pool and a child's is two transfers,
one in each ledger, with one batch id, all or nothing. A pause flows down; a reset does not
flow up; the audit finds a transfer whose twin is missing.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine, delete, event, select, update

from creditpool.domain.amounts import credits
from creditpool.domain.errors import (
    CreditpoolError,
    InsufficientCredits,
    InvalidInput,
    NotFound,
    NotReturnable,
)
from creditpool.domain.model import AccountKind, Seat, TransferKind
from creditpool.domain.policies import SettingsChange
from creditpool.services import credits as credit_service
from creditpool.services import families, family_rollup, members, orgs, reports, resets, usage
from creditpool.services.audit import audit
from creditpool.services.targets import Target
from creditpool.services.views import OrgView, TransferView
from creditpool.storage.database import create_database_engine
from creditpool.storage.schema import Account, Org, Transfer
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.clock import FakeClock
from tests.support.factories import OPERATOR, add_members, make_org, make_user
from tests.support.racing import race

MACHINE = "api-key:test"
FAMILY_KINDS = (
    TransferKind.TO_CHILD,
    TransferKind.FROM_PARENT,
    TransferKind.TO_PARENT,
    TransferKind.FROM_CHILD,
)


@dataclass
class Family:
    district: OrgView
    school: OrgView
    klass: OrgView


def child_of(uow: UnitOfWork, parent: OrgView, name: str, **settings: object) -> OrgView:
    owner = make_user(uow, f"Owner of {name}")
    change = SettingsChange(**settings) if settings else None  # type: ignore[arg-type]
    return families.create_child(
        uow, parent.id, name=name, owner_user_id=owner.id, settings=change, actor=OPERATOR
    )


@pytest.fixture
def family(uow: UnitOfWork) -> Family:
    district = make_org(uow, name="District", purchase="1000")
    school = child_of(uow, district, "North school")
    klass = child_of(uow, school, "Class 4B")
    return Family(district, school, klass)


def family_transfers(uow: UnitOfWork, org_id: str) -> list[TransferView]:
    return [t for t in reports.list_transfers(uow, org_id, limit=500) if t.kind in FAMILY_KINDS]


def available(uow: UnitOfWork, org_id: str) -> int:
    return reports.get_balance(uow, org_id).available


def test_a_district_funds_a_school_and_the_school_a_class(uow: UnitOfWork, family: Family) -> None:
    district, school, klass = family.district, family.school, family.klass
    assert (district.parent_id, school.parent_id, klass.parent_id) == (None, district.id, school.id)

    to_school = families.allot_to_child(uow, district.id, school.id, credits("300"), actor=OPERATOR)
    to_class = families.allot_to_child(uow, school.id, klass.id, credits("100"), actor=OPERATOR)

    assert (to_school.amount, to_school.parent.available, to_school.child.available) == (
        credits("300"),
        credits("700"),
        credits("300"),
    )
    assert (to_class.parent.available, to_class.child.available) == (credits("200"), credits("100"))
    # Each move is a pair of transfers, one in each ledger, sharing the batch id and amount.
    (out,) = family_transfers(uow, district.id)
    school_side = family_transfers(uow, school.id)
    assert (out.kind, out.debit_account, out.credit_account) == ("to_child", "pool", "children")
    assert (out.batch_id, out.amount, out.reference) == (
        to_school.batch_id,
        credits("300"),
        school.id,
    )
    by_kind = {t.kind: t for t in school_side}
    assert set(by_kind) == {"from_parent", "to_child"}
    came = by_kind["from_parent"]
    assert (came.debit_account, came.credit_account) == ("parent", "pool")
    assert (came.batch_id, came.amount, came.reference) == (
        to_school.batch_id,
        credits("300"),
        district.id,
    )
    assert by_kind["to_child"].batch_id == to_class.batch_id
    # Purchases stay where they were made: the school bought nothing.
    assert reports.get_balance(uow, school.id).purchased == 0
    assert families.family_received(uow, school.id) == (credits("300"), 0)
    assert families.ancestors_of(uow, klass.id) == [
        (school.id, "North school"),
        (district.id, "District"),
    ]
    assert families.ancestors_of(uow, district.id) == []
    assert audit(uow).clean


def test_a_fourth_level_is_refused_and_nothing_is_made(uow: UnitOfWork, family: Family) -> None:
    before = orgs.count_orgs(uow)

    with pytest.raises(InvalidInput) as refused:
        child_of(uow, family.klass, "A group inside the class")

    assert refused.value.code == "validation_error"
    assert orgs.count_orgs(uow) == before
    assert families.list_children(uow, family.klass.id) == []


def test_a_child_takes_the_family_of_its_parent(uow: UnitOfWork, family: Family) -> None:
    ids = [family.district.id, family.school.id, family.klass.id]
    with uow:
        rows = {
            org_id: (root_id, depth)
            for org_id, root_id, depth in uow.session.execute(
                select(Org.id, Org.root_id, Org.depth).where(Org.id.in_(ids))
            ).tuples()
        }
        accounts = set(
            uow.session.execute(
                select(Account.org_id, Account.id).where(
                    Account.org_id.in_(ids),
                    Account.id.in_([AccountKind.CHILDREN, AccountKind.PARENT]),
                )
            ).tuples()
        )
    assert [rows[i] for i in ids] == [
        (family.district.id, 1),
        (family.district.id, 2),
        (family.district.id, 3),
    ]
    assert accounts == {
        (family.district.id, "children"),
        (family.school.id, "parent"),
        (family.school.id, "children"),
        (family.klass.id, "parent"),
    }


def test_children_are_listed_by_name_with_their_balance(uow: UnitOfWork, family: Family) -> None:
    annex = child_of(uow, family.district, "Annex school")
    families.allot_to_child(uow, family.district.id, annex.id, credits("5"), actor=OPERATOR)

    listed = families.list_children(uow, family.district.id)

    assert [c.name for c in listed] == ["Annex school", "North school"]
    assert listed[0].balance.available == credits("5")
    assert listed[1].rollup.orgs == 2  # the school and its class


def test_an_allotment_the_parent_cannot_cover_moves_nothing(
    uow: UnitOfWork, family: Family
) -> None:
    with pytest.raises(InsufficientCredits):
        families.allot_to_child(
            uow, family.district.id, family.school.id, credits("1000.000001"), actor=OPERATOR
        )

    assert available(uow, family.district.id) == credits("1000")
    assert available(uow, family.school.id) == 0
    assert family_transfers(uow, family.district.id) == []
    assert family_transfers(uow, family.school.id) == []
    assert audit(uow).clean


def test_seat_burn_bounds_an_allotment(uow: UnitOfWork, clock: FakeClock) -> None:
    # 365 credits a year per licensed seat: the owner's seat burns 1 credit a day.
    district = make_org(
        uow, name="District", purchase="10", settings=SettingsChange(rate_licensed=credits("365"))
    )
    school = child_of(uow, district, "School")
    clock.advance(days=4)

    with pytest.raises(InsufficientCredits):
        families.allot_to_child(uow, district.id, school.id, credits("6.5"), actor=OPERATOR)
    moved = families.allot_to_child(uow, district.id, school.id, credits("6"), actor=OPERATOR)

    assert moved.parent.available == 0
    assert reports.get_balance(uow, district.id).metered == credits("4")
    assert audit(uow).clean


def test_taking_back_defaults_to_all_the_child_has(uow: UnitOfWork, family: Family) -> None:
    families.allot_to_child(
        uow, family.district.id, family.school.id, credits("300"), actor=OPERATOR
    )
    part = families.take_back_from_child(
        uow, family.district.id, family.school.id, credits("50"), actor=OPERATOR
    )
    rest = families.take_back_from_child(uow, family.district.id, family.school.id, actor=OPERATOR)
    nothing = families.take_back_from_child(
        uow, family.district.id, family.school.id, actor=OPERATOR
    )

    assert (part.amount, part.child.available) == (credits("50"), credits("250"))
    assert (rest.amount, rest.parent.available, rest.child.available) == (
        credits("250"),
        credits("1000"),
        0,
    )
    assert nothing.amount == 0
    returned = {
        t.batch_id: t.amount
        for t in family_transfers(uow, family.school.id)
        if t.kind == "to_parent"
    }
    assert returned == {part.batch_id: credits("50"), rest.batch_id: credits("250")}
    back = {
        t.batch_id: t for t in family_transfers(uow, family.district.id) if t.kind == "from_child"
    }
    assert {b: t.amount for b, t in back.items()} == {
        part.batch_id: credits("50"),
        rest.batch_id: credits("250"),
    }
    assert families.family_received(uow, family.school.id) == (credits("300"), credits("300"))
    assert audit(uow).clean


def test_taking_back_from_an_empty_child_leaves_both_burns_unposted(
    uow: UnitOfWork, clock: FakeClock
) -> None:
    # A burning district and its school with nothing in its pool: "take back all" moves
    # nothing, so it must post no burn either (posting it would split the accrual and let the
    # rounding of each piece drift the pool; found by the ledger's state machine).
    district = make_org(
        uow, name="District", purchase="45", settings=SettingsChange(rate_licensed=credits("1"))
    )
    school = child_of(uow, district, "School", rate_licensed=credits("1"))
    clock.advance(hours=1)
    before = reports.get_balance(uow, district.id)

    nothing = families.take_back_from_child(uow, district.id, school.id, actor=OPERATOR)

    kinds = {t.kind for org in (district, school) for t in reports.list_transfers(uow, org.id)}
    assert nothing.amount == 0
    assert TransferKind.METERING not in kinds
    assert reports.get_balance(uow, district.id).depletes_at == before.depletes_at


def test_taking_back_more_than_the_child_has_moves_nothing(uow: UnitOfWork, family: Family) -> None:
    families.allot_to_child(
        uow, family.district.id, family.school.id, credits("30"), actor=OPERATOR
    )

    with pytest.raises(InsufficientCredits):
        families.take_back_from_child(
            uow, family.district.id, family.school.id, credits("31"), actor=OPERATOR
        )

    assert (available(uow, family.district.id), available(uow, family.school.id)) == (
        credits("970"),
        credits("30"),
    )
    assert len(family_transfers(uow, family.district.id)) == 1
    assert audit(uow).clean


def test_a_child_that_forbids_returns_keeps_its_credits(uow: UnitOfWork) -> None:
    district = make_org(uow, name="District", purchase="100")
    school = child_of(uow, district, "Keeps", returnable=False)
    families.allot_to_child(uow, district.id, school.id, credits("40"), actor=OPERATOR)

    with pytest.raises(NotReturnable):
        families.take_back_from_child(uow, district.id, school.id, actor=OPERATOR)

    assert (available(uow, district.id), available(uow, school.id)) == (
        credits("60"),
        credits("40"),
    )


def test_only_a_child_of_the_org_is_reached(uow: UnitOfWork, family: Family) -> None:
    stranger = make_org(uow, name="Elsewhere", purchase="10")
    # A grandchild is not a child; an org of another family is not one; nor is the parent.
    for parent, child in (
        (family.district, family.klass),
        (family.district, stranger),
        (family.school, family.district),
        (stranger, family.school),
    ):
        with pytest.raises(NotFound):
            families.allot_to_child(uow, parent.id, child.id, credits("1"), actor=OPERATOR)
        with pytest.raises(NotFound):
            families.take_back_from_child(uow, parent.id, child.id, actor=OPERATOR)
    assert available(uow, family.district.id) == credits("1000")


def test_a_replayed_key_moves_credits_once(uow: UnitOfWork, family: Family) -> None:
    first = families.allot_to_child(
        uow,
        family.district.id,
        family.school.id,
        credits("7"),
        actor=OPERATOR,
        idempotency_key="k1",
    )
    again = families.allot_to_child(
        uow,
        family.district.id,
        family.school.id,
        credits("7"),
        actor=OPERATOR,
        idempotency_key="k1",
    )

    assert again.batch_id == first.batch_id
    assert available(uow, family.school.id) == credits("7")
    assert len(family_transfers(uow, family.school.id)) == 1


def test_rollup_sums_an_org_and_all_its_descendants(uow: UnitOfWork, family: Family) -> None:
    district, school, klass = family.district, family.school, family.klass
    families.allot_to_child(uow, district.id, school.id, credits("300"), actor=OPERATOR)
    families.allot_to_child(uow, school.id, klass.id, credits("100"), actor=OPERATOR)
    add_members(uow, school.id, 2)
    students = add_members(uow, klass.id, 3)
    credit_service.allocate_credits(
        uow, klass.id, Target.members([s.id for s in students]), credits("10"), actor=OPERATOR
    )
    usage.charge_usage(
        uow, klass.id, students[0].id, credits("4"), metrics={"renders": 2}, actor=MACHINE
    )
    usage.charge_usage(
        uow,
        klass.id,
        students[1].id,
        credits("1"),
        metrics={"renders": 1, "frames": 9},
        actor=MACHINE,
    )

    top = orgs.get_org(uow, district.id).rollup
    middle = orgs.get_org(uow, school.id).rollup
    leaf = orgs.get_org(uow, klass.id)

    # Pools: 700 in the district, 200 in the school, 100 - 30 = 70 in the class.
    assert (top.orgs, top.members) == (3, 1 + 3 + 4)
    assert (top.available, top.allocated, top.used, top.metered) == (
        credits("970"),
        credits("25"),
        credits("5"),
        0,
    )
    assert top.usage == {"renders": 3, "frames": 9}
    assert (middle.orgs, middle.members, middle.available) == (2, 3 + 4, credits("270"))
    assert middle.usage == top.usage
    # An org without children rolls up to its own figures.
    assert (leaf.rollup.orgs, leaf.rollup.members) == (1, 4)
    assert (leaf.rollup.available, leaf.rollup.allocated, leaf.rollup.used) == (
        leaf.balance.available,
        leaf.balance.allocated,
        leaf.balance.used,
    )
    assert leaf.rollup.usage == leaf.usage == {"renders": 3, "frames": 9}
    # What the district bought is all there: in pools, in wallets, used.
    assert top.available + top.allocated + top.used == credits("1000")


def test_pausing_a_parent_stops_the_burn_below_and_resuming_starts_it(
    uow: UnitOfWork, clock: FakeClock
) -> None:
    burning = SettingsChange(rate_licensed=credits("365"))  # a licensed seat: 1 credit a day
    district = make_org(uow, name="District", purchase="100", settings=burning)
    school = families.create_child(
        uow,
        district.id,
        name="School",
        owner_user_id=make_user(uow).id,
        settings=burning,
        actor=OPERATOR,
    )
    klass = families.create_child(
        uow,
        school.id,
        name="Class",
        owner_user_id=make_user(uow).id,
        settings=burning,
        actor=OPERATOR,
    )
    families.allot_to_child(uow, district.id, school.id, credits("50"), actor=OPERATOR)
    families.allot_to_child(uow, school.id, klass.id, credits("20"), actor=OPERATOR)
    (student,) = add_members(uow, klass.id, 1, seat=Seat.LICENSED)
    credit_service.allocate_credits(
        uow, klass.id, Target.members([student.id]), credits("5"), actor=OPERATOR
    )
    clock.advance(days=1)
    assert available(uow, klass.id) == credits("13")  # 15 less two seats for a day

    orgs.set_paused(uow, district.id, paused=True, actor=OPERATOR)
    clock.advance(days=3)

    # Nothing burnt below the paused district, and the class's usage goes on.
    assert available(uow, klass.id) == credits("13")
    assert available(uow, school.id) == credits("29")
    usage.charge_usage(uow, klass.id, student.id, credits("1"), actor=MACHINE)
    assert orgs.get_org(uow, klass.id).balance.burn_rate_per_day == 0

    # A school paused itself keeps its class stopped when the district resumes.
    orgs.set_paused(uow, school.id, paused=True, actor=OPERATOR)
    orgs.set_paused(uow, district.id, paused=False, actor=OPERATOR)
    clock.advance(days=1)
    assert available(uow, klass.id) == credits("13")
    assert available(uow, district.id) == credits("48")

    orgs.set_paused(uow, school.id, paused=False, actor=OPERATOR)
    clock.advance(days=2)
    assert available(uow, klass.id) == credits("9")
    assert available(uow, school.id) == credits("27")
    assert audit(uow).clean


def test_a_child_of_a_paused_parent_starts_stopped(uow: UnitOfWork, clock: FakeClock) -> None:
    district = make_org(uow, name="District", purchase="100")
    orgs.set_paused(uow, district.id, paused=True, actor=OPERATOR)
    school = child_of(uow, district, "School", rate_licensed=credits("365"))
    families.allot_to_child(uow, district.id, school.id, credits("10"), actor=OPERATOR)
    clock.advance(days=2)
    assert available(uow, school.id) == credits("10")

    orgs.set_paused(uow, district.id, paused=False, actor=OPERATOR)
    clock.advance(days=2)
    assert available(uow, school.id) == credits("8")


def test_a_childs_reset_never_touches_its_parent(uow: UnitOfWork, family: Family) -> None:
    families.allot_to_child(
        uow, family.district.id, family.school.id, credits("300"), actor=OPERATOR
    )
    students = add_members(uow, family.school.id, 2)
    credit_service.allocate_credits(
        uow,
        family.school.id,
        Target.members([s.id for s in students]),
        credits("20"),
        actor=OPERATOR,
    )
    before = reports.get_balance(uow, family.district.id)
    ledger_before = reports.list_transfers(uow, family.district.id, limit=500)
    people_before = members.list_members(uow, family.district.id, status=None)

    result = resets.reset_org(uow, family.school.id, actor=OPERATOR)

    assert result.removed == 2
    assert available(uow, family.school.id) == credits("300")  # the wallets came back to it
    assert reports.get_balance(uow, family.district.id) == before
    assert reports.list_transfers(uow, family.district.id, limit=500) == ledger_before
    assert members.list_members(uow, family.district.id, status=None) == people_before
    assert audit(uow).clean


@pytest.fixture
def moved(uow: UnitOfWork, family: Family) -> Family:
    families.allot_to_child(
        uow, family.district.id, family.school.id, credits("300"), actor=OPERATOR
    )
    families.take_back_from_child(
        uow, family.district.id, family.school.id, credits("20"), actor=OPERATOR
    )
    assert audit(uow).clean
    return family


def test_the_audit_finds_an_allotment_without_its_twin(uow: UnitOfWork, moved: Family) -> None:
    with uow:
        twin = uow.session.scalars(
            select(Transfer).where(
                Transfer.org_id == moved.school.id, Transfer.kind == TransferKind.FROM_PARENT
            )
        ).one()
        batch = twin.batch_id
        uow.session.execute(
            delete(Transfer).where(Transfer.org_id == twin.org_id, Transfer.id == twin.id)
        )
        uow.commit()

    for report in (audit(uow), audit(uow, moved.district.id), audit(uow, moved.school.id)):
        assert f"to_child of batch {batch} (300000000) has no from_parent twin" in "\n".join(
            report.breaches
        )


def test_the_audit_finds_a_twin_of_another_amount(uow: UnitOfWork, moved: Family) -> None:
    with uow:
        uow.session.execute(
            update(Transfer)
            .where(Transfer.org_id == moved.district.id, Transfer.kind == TransferKind.FROM_CHILD)
            .values(amount=credits("21"))
        )
        uow.commit()

    breaches = "\n".join(audit(uow, moved.school.id).breaches)

    assert "to_parent of batch" in breaches
    assert "(20000000) has from_child twins in its parent moving [21000000]" in breaches
    assert "(21000000) has to_parent twins in a child moving [20000000]" in breaches


def test_the_audit_finds_a_children_account_out_of_step(uow: UnitOfWork, moved: Family) -> None:
    with uow:
        uow.session.execute(
            update(Account)
            .where(Account.org_id == moved.school.id, Account.id == AccountKind.PARENT)
            .values(balance=Account.balance - 1)
        )
        uow.commit()

    breaches = audit(uow, moved.school.id).breaches

    assert (
        f"org {moved.district.id}: its children account holds 280000000 but its children's "
        "parent accounts sum to -280000001"
    ) in breaches


# Races on PostgreSQL: real threads, real commits, a fresh family (these tests commit).


@pytest.fixture
def pg_engine(postgresql_url: str) -> Iterator[Engine]:
    """An engine with a connection for every racing thread, and one to spare."""
    engine = create_database_engine(postgresql_url, pool_size=RACERS + 2, max_overflow=2)
    yield engine
    engine.dispose()


RACERS = 6


def open_family(uow: UnitOfWork, purchase: str) -> tuple[OrgView, list[OrgView]]:
    def person() -> str:
        return make_user(uow, email=f"family-race-{uuid.uuid4().hex}@example.test").id

    parent = orgs.create_org(uow, name="Race district", owner_user_id=person(), actor=OPERATOR)
    credit_service.record_purchase(uow, parent.id, credits(purchase), actor=OPERATOR)
    children = [
        families.create_child(
            uow, parent.id, name=f"School {n}", owner_user_id=person(), actor=OPERATOR
        )
        for n in range(2)
    ]
    return parent, children


@pytest.mark.postgres_only
def test_racing_allotments_from_one_parent_never_overdraw(pg_engine: Engine) -> None:
    setup = UnitOfWork.for_engine(pg_engine)
    parent, children = open_family(setup, "10")
    # Two allotments of 6 from a pool of 10 at the same instant: exactly one goes through.
    outcomes: list[str] = []

    def allot(child: OrgView) -> Callable[[], None]:
        uow = UnitOfWork.for_engine(pg_engine)

        def work() -> None:
            try:
                families.allot_to_child(uow, parent.id, child.id, credits("6"), actor=OPERATOR)
                outcomes.append("moved")
            except CreditpoolError as refusal:
                outcomes.append(refusal.code)

        return work

    race([allot(children[0]), allot(children[1])])
    assert sorted(outcomes) == ["insufficient_credits", "moved"]

    # Then a mix: allotments, taking back, and the parent paused and resumed (its pause
    # locks the children after it), from several threads for a second.
    unexpected: list[str] = []
    moved = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + 1.0

    def mix(number: int) -> Callable[[], None]:
        uow = UnitOfWork.for_engine(pg_engine)
        rng = random.Random(number)

        def work() -> None:
            while time.monotonic() < deadline:
                child = rng.choice(children)
                try:
                    step = rng.random()
                    if step < 0.5:
                        done = families.allot_to_child(
                            uow,
                            parent.id,
                            child.id,
                            credits(rng.choice(["1", "2", "3"])),
                            actor=OPERATOR,
                        )
                        with lock:
                            moved[0] += 1 if done.amount else 0
                    elif step < 0.85:
                        families.take_back_from_child(uow, parent.id, child.id, actor=OPERATOR)
                    else:
                        orgs.set_paused(uow, parent.id, paused=rng.random() < 0.5, actor=OPERATOR)
                except CreditpoolError as refusal:
                    if refusal.code != "insufficient_credits":
                        unexpected.append(refusal.code)
                except Exception as error:  # a deadlock reaching the caller fails the test
                    unexpected.append(f"{type(error).__name__}: {error}")

        return work

    race([mix(number) for number in range(RACERS)])

    assert unexpected == []
    assert moved[0] > 0
    pools = [reports.get_balance(setup, org.id) for org in (parent, *children)]
    assert all(pool.available >= 0 for pool in pools)
    assert sum(pool.available for pool in pools) == credits("10")  # nothing burns here
    for org in (parent, *children):
        report = audit(setup, org.id)
        assert report.clean, report.breaches


def test_the_rollup_of_an_org_without_children_costs_one_query(
    uow: UnitOfWork, family: Family
) -> None:
    lonely = make_org(uow, name="Alone")
    own = family_rollup.OwnFigures(0, 0, 0, 0, {})
    sent: list[str] = []

    def note(_connection: object, _cursor: object, statement: str, *_: object) -> None:
        sent.append(statement)

    with uow:
        rows = {o.id: o for o in uow.session.scalars(select(Org))}
        connection = uow.session.connection()
        event.listen(connection, "before_cursor_execute", note)
        try:
            # The third level can have no children: nothing is read.
            family_rollup.rollup_of(uow, rows[family.klass.id], own)
            assert sent == []
            # Above it, one read of the descendants finds none.
            alone = family_rollup.rollup_of(uow, rows[lonely.id], own)
            assert (alone.orgs, len(sent)) == (1, 1)
            # With descendants: that read, and one of their usage metrics.
            family_rollup.rollup_of(uow, rows[family.district.id], own)
            assert len(sent) == 3
        finally:
            event.remove(connection, "before_cursor_execute", note)
