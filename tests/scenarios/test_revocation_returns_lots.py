"""Lots: credits that go back to a pool go back to the lots they came from.

The Pine school buys two lots: "first", 30 credits spent first (priority 20), and "second",
100 credits (priority 50, expiring in a year). Seats cost nothing here, so only these moves
change the pool. The owner allots 20 to each of four students in turn: Ada gets 20 of first,
Ben the last 10 of first and 10 of second, Cleo and Dan 20 of second each. Cleo renders for
5. Then credits come back, each time to the lots they came from (a wallet gives back in the
spending order too, first before second):

    step      lot     in_pool  in_wallets  used
    allotted  first   0        30          0
    allotted  second  50       50          0
    rendered  first   0        30          0
    rendered  second  50       45          5
    ben_5     first   5        25          0
    ben_5     second  50       45          5
    ben_all   first   10       20          0
    ben_all   second  60       35          5
    ada_gone  first   30       0           0
    ada_gone  second  60       35          5
    reset     first   30       0           0
    reset     second  95       0           5

(ben_5: 5 revoked from Ben, from first; ben_all: all Ben has left, 15 = first 5 + second 10;
ada_gone: Ada removed, her 20 of first back; reset: the class reset removes Ben, Cleo and
Dan, giving back Cleo's 15 and Dan's 20 of second, Ben having nothing left.)

A family: the Riverside district buys "spring", 100 credits spent first (priority 10, expiring
in 90 days), and "stock", 500 (priority 50, never expiring). It allots 150 to North school:
100 of spring and 50 of stock, which arrive in North as two lots of its own that name them
(source "parent", the same priority and expiry). North buys 40 credits itself ("own",
priority 5: North spends them before anything). Taking back comes only from what came down,
in North's spending order, and returns to the district's lots:

    step        org       lot     in_pool  moved
    allotted    district  spring  0        100
    allotted    district  stock   450      50
    allotted    north     own     40       0
    allotted    north     spring  100      0
    allotted    north     stock   50       0
    back_120    district  spring  100      0
    back_120    district  stock   470      30
    back_120    north     own     40       0
    back_120    north     spring  0        100
    back_120    north     stock   30       20
    back_all    district  spring  100      0
    back_all    district  stock   500      0
    back_all    north     own     40       0
    back_all    north     spring  0        100
    back_all    north     stock   0        50

(back_120: 120 taken back, 100 of spring then 20 of stock; back_all: all North can give back,
the 30 of stock; its own 40 stay, and asking for 1 more is refused.) Every expected figure is
read from these tables or worked out above. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from creditpool.domain.amounts import credits, format_credits
from creditpool.domain.errors import InsufficientCredits
from creditpool.domain.model import LotSource, TransferKind
from creditpool.services import audit, families, members, reports, resets, usage
from creditpool.services import credits as credit_service
from creditpool.services.targets import Target
from creditpool.services.views import OrgView, TransferView
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.clock import FakeClock
from tests.support.factories import OPERATOR, add_members, make_org, make_user
from tests.support.lot_books import lot_breaches, lots_of
from tests.support.worked_tables import docstring_table

SCHOOL = docstring_table(__doc__, "step      lot")
FAMILY = docstring_table(__doc__, "step        org")


def school_rows(step: str) -> list[list[str]]:
    return [cells[1:] for cells in SCHOOL if cells[0] == step]


def family_rows(step: str) -> list[list[str]]:
    return [cells[1:] for cells in FAMILY if cells[0] == step]


def whole(micros: int) -> str:
    return format_credits(micros)


def shares(transfer: TransferView, names: dict[str, str]) -> list[tuple[str, str]]:
    """A transfer's lots by name, in the order they were taken."""
    return [(names[share.lot_id], whole(share.amount)) for share in transfer.lots]


def lot_table(uow: UnitOfWork, org_id: str, names: dict[str, str]) -> list[list[str]]:
    """The school's lots as the first table writes them."""
    return [
        [names[lot.id], whole(lot.in_pool), whole(lot.in_wallets), whole(lot.used)]
        for lot in lots_of(uow, org_id)
    ]


def test_revoked_and_returned_credits_go_back_to_their_lots(
    uow: UnitOfWork, clock: FakeClock
) -> None:
    school = make_org(uow, name="Pine school")
    first = credit_service.record_purchase(
        uow, school.id, credits("30"), actor=OPERATOR, priority=20
    )
    second = credit_service.record_purchase(
        uow,
        school.id,
        credits("100"),
        actor=OPERATOR,
        priority=50,
        expires_at=clock.current + timedelta(days=365),
    )
    names = {first.lots[0].lot_id: "first", second.lots[0].lot_id: "second"}
    ada, ben, cleo, dan = add_members(uow, school.id, 4)
    allotments = [
        credit_service.allocate_credits(
            uow, school.id, Target.members([student.id]), credits("20"), actor=OPERATOR
        )
        for student in (ada, ben, cleo, dan)
    ]
    assert [batch.total for batch in allotments] == [credits("20")] * 4
    given = reports.list_transfers(uow, school.id, kind=TransferKind.ALLOCATION)
    assert [shares(t, names) for t in reversed(given)] == [
        [("first", "20")],
        [("first", "10"), ("second", "10")],
        [("second", "20")],
        [("second", "20")],
    ]
    assert lot_table(uow, school.id, names) == school_rows("allotted")

    clock.advance(minutes=1)
    usage.charge_usage(uow, school.id, cleo.id, credits("5"), actor=OPERATOR)
    assert lot_table(uow, school.id, names) == school_rows("rendered")

    clock.advance(minutes=1)
    credit_service.revoke_credits(
        uow, school.id, Target.members([ben.id]), credits("5"), actor=OPERATOR
    )
    assert lot_table(uow, school.id, names) == school_rows("ben_5")

    clock.advance(minutes=1)
    credit_service.revoke_credits(uow, school.id, Target.members([ben.id]), actor=OPERATOR)
    assert lot_table(uow, school.id, names) == school_rows("ben_all")
    revoked = reports.list_transfers(uow, school.id, member_id=ben.id, kind=TransferKind.REVOCATION)
    assert [shares(t, names) for t in reversed(revoked)] == [
        [("first", "5")],
        [("first", "5"), ("second", "10")],
    ]

    clock.advance(minutes=1)
    members.remove_member(uow, school.id, ada.id, actor=OPERATOR)
    assert lot_table(uow, school.id, names) == school_rows("ada_gone")
    (returned,) = reports.list_transfers(
        uow, school.id, member_id=ada.id, kind=TransferKind.REVOCATION
    )
    assert shares(returned, names) == [("first", "20")]

    clock.advance(minutes=1)
    result = resets.reset_org(uow, school.id, actor=OPERATOR)
    assert (result.removed, result.revoked) == (3, credits("35"))
    assert lot_table(uow, school.id, names) == school_rows("reset")
    for student, amount in ((cleo, "15"), (dan, "20")):
        (back,) = reports.list_transfers(
            uow, school.id, member_id=student.id, kind=TransferKind.REVOCATION
        )
        assert shares(back, names) == [("second", amount)]

    assert reports.get_balance(uow, school.id).available == credits("125")
    report = audit.audit(uow, school.id)
    assert report.clean, report.breaches
    assert lot_breaches(uow, school.id) == []


def child(uow: UnitOfWork, parent: OrgView, name: str) -> OrgView:
    owner = make_user(uow, f"Head of {name}")
    return families.create_child(uow, parent.id, name=name, owner_user_id=owner.id, actor=OPERATOR)


def family_table(
    uow: UnitOfWork, orgs: dict[str, OrgView], names: dict[str, str]
) -> list[list[str]]:
    """The family's lots as the second table writes them, the district's then North's."""
    return [
        [org_name, names[lot.id], whole(lot.in_pool), whole(lot.moved)]
        for org_name, org in orgs.items()
        for lot in sorted(lots_of(uow, org.id), key=lambda lot: names[lot.id])
    ]


def test_a_parent_takes_back_only_its_own_lots(uow: UnitOfWork, clock: FakeClock) -> None:
    district = make_org(uow, name="Riverside district")
    spring_ends = clock.current + timedelta(days=90)
    spring = credit_service.record_purchase(
        uow, district.id, credits("100"), actor=OPERATOR, priority=10, expires_at=spring_ends
    )
    stock = credit_service.record_purchase(uow, district.id, credits("500"), actor=OPERATOR)
    north = child(uow, district, "North school")
    orgs = {"district": district, "north": north}

    clock.advance(minutes=1)
    families.allot_to_child(uow, district.id, north.id, credits("150"), actor=OPERATOR)
    came_down = {lot.parent_lot_id: lot for lot in lots_of(uow, north.id)}
    assert set(came_down) == {spring.lots[0].lot_id, stock.lots[0].lot_id}
    names = {
        spring.lots[0].lot_id: "spring",
        stock.lots[0].lot_id: "stock",
        came_down[spring.lots[0].lot_id].id: "spring",
        came_down[stock.lots[0].lot_id].id: "stock",
    }
    # North's lots carry the district's terms down, and name the lot they came from.
    assert [
        (lot.source, lot.priority, lot.expires_at, lot.amount)
        for lot in (came_down[spring.lots[0].lot_id], came_down[stock.lots[0].lot_id])
    ] == [
        (LotSource.PARENT, 10, spring_ends, credits("100")),
        (LotSource.PARENT, 50, None, credits("50")),
    ]
    (sent,) = reports.list_transfers(uow, district.id, kind=TransferKind.TO_CHILD)
    (received,) = reports.list_transfers(uow, north.id, kind=TransferKind.FROM_PARENT)
    assert shares(sent, names) == shares(received, names) == [("spring", "100"), ("stock", "50")]

    clock.advance(minutes=1)
    own = credit_service.record_purchase(uow, north.id, credits("40"), actor=OPERATOR, priority=5)
    names[own.lots[0].lot_id] = "own"
    assert family_table(uow, orgs, names) == family_rows("allotted")

    clock.advance(minutes=1)
    families.take_back_from_child(uow, district.id, north.id, credits("120"), actor=OPERATOR)
    (went_up,) = reports.list_transfers(uow, north.id, kind=TransferKind.TO_PARENT)
    (came_back,) = reports.list_transfers(uow, district.id, kind=TransferKind.FROM_CHILD)
    assert (
        shares(went_up, names) == shares(came_back, names) == [("spring", "100"), ("stock", "20")]
    )
    assert family_table(uow, orgs, names) == family_rows("back_120")

    clock.advance(minutes=1)
    moved = families.take_back_from_child(uow, district.id, north.id, actor=OPERATOR)
    assert moved.amount == credits("30")
    assert family_table(uow, orgs, names) == family_rows("back_all")
    with pytest.raises(InsufficientCredits):
        families.take_back_from_child(uow, district.id, north.id, credits("1"), actor=OPERATOR)
    assert reports.get_balance(uow, north.id).available == credits("40")

    for org in orgs.values():
        report = audit.audit(uow, org.id)
        assert report.clean, report.breaches
        assert lot_breaches(uow, org.id) == []
