"""Pools inside pools: a district funds two schools, the schools fund three classes.

The Riverside district buys 1,000 credits. It has two schools, North and South; North runs two
classes (Modelling, Animation), South one (Film): six orgs in three levels, each with its own
pool, its owner (the superintendent, a principal, an instructor) on a licensed seat, and its
own ledger. Every org charges 365 credits a year for a licensed seat, exactly 1 credit a day, so
a day of burn is as many credits as the org has seats (its owner and its students). The clock
stands still until the story moves it, so nothing burns before the last act.

1. The district allots 400 to North and 300 to South (district pool 1,000 - 700 = 300).
2. North allots 150 to Modelling and 150 to Animation (North 400 - 300 = 100); South allots 200
   to Film (South 300 - 200 = 100).
3. Students join: 3 in Modelling, 2 in Animation, 4 in Film. The instructors allot 40 each in
   Modelling (120; pool 30), 50 each in Animation (100; pool 50), 40 each in Film (160; pool
   40). Pools 300 + 100 + 100 + 30 + 50 + 40 = 620, wallets 120 + 100 + 160 = 380.
4. Each render costs 2.5 credits and reports {"renders": 1, "frames": 240}. Modelling's students
   render 2, 3 and 5 times, Animation's 4 and 4, Film's 3 each: 10 + 8 + 12 = 30 renders,
   7,200 frames, 75 credits (25 + 20 + 30). Wallets 380 - 75 = 305.
5. Take-backs: North takes 20 back from Animation (50 -> 30; North 100 -> 120); the district
   takes 60 back from South (100 -> 40; district 300 -> 360). Credits move inside the family,
   so the roll-up's available stays 620. Asking for more than a pool holds moves nothing.
6. A class cannot have a class of its own: a fourth level is refused.
7. Modelling's reset removes its 3 students and returns what they hold, 120 - 25 = 95, to
   Modelling's pool (30 -> 125); North's books do not move. Members 15 -> 12.
8. One day passes: 12 seats burn 12 credits (district 1, North 1, South 1, Modelling 1,
   Animation 3, Film 5). The district pauses: for two days no school or class burns a thing.
   It resumes, and one more day burns 12 again: 24 in all.

The district's roll-up (itself and its five descendants) after each step, in credits:

| step                | orgs | members | available | allocated | used | metered | renders | frames |
| ------------------- | ---- | ------- | --------- | --------- | ---- | ------- | ------- | ------ |
| bought              | 1    | 1       | 1000      | 0         | 0    | 0       | 0       | 0      |
| schools and classes | 6    | 6       | 1000      | 0         | 0    | 0       | 0       | 0      |
| allotted down       | 6    | 15      | 620       | 380       | 0    | 0       | 0       | 0      |
| rendered            | 6    | 15      | 620       | 305       | 75   | 0       | 30      | 7200   |
| taken back          | 6    | 15      | 620       | 305       | 75   | 0       | 30      | 7200   |
| Modelling reset     | 6    | 12      | 715       | 210       | 75   | 0       | 30      | 7200   |
| a day of seats      | 6    | 12      | 703       | 210       | 75   | 12      | 30      | 7200   |
| paused two days     | 6    | 12      | 703       | 210       | 75   | 12      | 30      | 7200   |
| final               | 6    | 12      | 691       | 210       | 75   | 24      | 30      | 7200   |

The final pools: district 358, North 118, South 38, Modelling 123, Animation 24, Film 30; and
691 + 210 + 75 + 24 = 1,000: every credit bought is in a pool, in a wallet, used or burnt.
Every expected figure is read from this table or worked out above, never from the code. Runs on
SQLite and PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from creditpool.domain.amounts import credits
from creditpool.domain.errors import InsufficientCredits, InvalidInput
from creditpool.domain.model import Role, TransferKind
from creditpool.domain.policies import SettingsChange
from creditpool.services import audit, families, members, orgs, reports, resets, usage
from creditpool.services import credits as credit_service
from creditpool.services.targets import Target
from creditpool.services.views import MemberView, OrgView
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.clock import FakeClock
from tests.support.factories import OPERATOR, add_members, make_org, make_user

RENDER_FARM = "api-key:render-farm"
ONE_RENDER = {"renders": 1, "frames": 240}
RENDER_COST = "2.5"
# 365 credits a year for a licensed seat: 1 credit a day, exactly.
SEAT_A_DAY = SettingsChange(rate_licensed=credits("365"), rate_unlicensed=0, rate_external=0)
COLUMNS = ("orgs", "members", "available", "allocated", "used", "metered", "renders", "frames")


def table_rows() -> dict[str, dict[str, int]]:
    """The roll-up table of this module's docstring: step -> figure -> micro-credits or count."""
    rows: dict[str, dict[str, int]] = {}
    for line in (__doc__ or "").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != len(COLUMNS) + 1 or not cells[1].isdigit():
            continue
        figures = dict(zip(COLUMNS, (int(cell) for cell in cells[1:]), strict=True))
        for name in ("available", "allocated", "used", "metered"):
            figures[name] = credits(str(figures[name]))
        rows[cells[0]] = figures
    return rows


TABLE = table_rows()


def rollup(uow: UnitOfWork, org_id: str) -> dict[str, int]:
    """The org's roll-up as the table's columns."""
    view = orgs.get_org(uow, org_id).rollup
    return {
        "orgs": view.orgs,
        "members": view.members,
        "available": view.available,
        "allocated": view.allocated,
        "used": view.used,
        "metered": view.metered,
        "renders": view.usage.get("renders", 0),
        "frames": view.usage.get("frames", 0),
    }


def pools(uow: UnitOfWork, district: District) -> dict[str, int]:
    """What each of the six pools holds now, by name."""
    return {name: reports.get_balance(uow, org.id).available for name, org in district.orgs()}


@dataclass
class District:
    """The six orgs of the story and the instructors' students."""

    top: OrgView
    north: OrgView
    south: OrgView
    modelling: OrgView
    animation: OrgView
    film: OrgView

    def orgs(self) -> list[tuple[str, OrgView]]:
        return [
            ("district", self.top),
            ("north", self.north),
            ("south", self.south),
            ("modelling", self.modelling),
            ("animation", self.animation),
            ("film", self.film),
        ]


def child(uow: UnitOfWork, parent: OrgView, name: str) -> OrgView:
    """Open a child org of `parent` with a fresh owner (a principal or an instructor)."""
    owner = make_user(uow, f"Head of {name}")
    return families.create_child(
        uow,
        parent.id,
        name=name,
        owner_user_id=owner.id,
        settings=SEAT_A_DAY,
        actor=OPERATOR,
    )


def allot_down(uow: UnitOfWork, parent: OrgView, to: OrgView, amount: str) -> None:
    """The parent's owner allots `amount` credits to a child's pool."""
    moved = families.allot_to_child(uow, parent.id, to.id, credits(amount), actor=OPERATOR)
    assert moved.amount == credits(amount)


def take_back(uow: UnitOfWork, parent: OrgView, from_: OrgView, amount: str) -> None:
    """The parent's owner takes `amount` credits back from a child's pool."""
    moved = families.take_back_from_child(uow, parent.id, from_.id, credits(amount), actor=OPERATOR)
    assert moved.amount == credits(amount)


def allot_each(uow: UnitOfWork, org: OrgView, students: list[MemberView], amount: str) -> None:
    """The class's instructor allots `amount` to each of its students in one batch."""
    (owner,) = [m for m in members.list_members(uow, org.id) if m.role is Role.OWNER]
    instructor = f"user:{owner.user_id}"
    batch = credit_service.allocate_credits(
        uow, org.id, Target.all_students(), credits(amount), actor=instructor
    )
    assert batch.total == credits(amount) * len(students)


def render(uow: UnitOfWork, org: OrgView, student: MemberView, times: int) -> None:
    """The render farm charges `times` renders of 2.5 credits to the student."""
    for _ in range(times):
        usage.charge_usage(
            uow, org.id, student.id, credits(RENDER_COST), metrics=ONE_RENDER, actor=RENDER_FARM
        )


def test_a_district_funds_its_schools_and_their_classes(uow: UnitOfWork, clock: FakeClock) -> None:
    # The district buys 1,000 credits.
    top = make_org(uow, name="Riverside district", purchase="1000", settings=SEAT_A_DAY)
    assert top.parent_id is None
    assert rollup(uow, top.id) == TABLE["bought"]

    # Two schools, and three classes under them.
    north, south = child(uow, top, "North school"), child(uow, top, "South school")
    district = District(
        top=top,
        north=north,
        south=south,
        modelling=child(uow, north, "Modelling"),
        animation=child(uow, north, "Animation"),
        film=child(uow, south, "Film"),
    )
    assert (north.parent_id, south.parent_id) == (top.id, top.id)
    assert (district.modelling.parent_id, district.film.parent_id) == (north.id, south.id)
    assert rollup(uow, top.id) == TABLE["schools and classes"]
    assert {c.id for c in families.list_children(uow, north.id)} == {
        district.modelling.id,
        district.animation.id,
    }

    # Step 1 and 2: credits flow down, each move in both ledgers with one batch id.
    moved = families.allot_to_child(uow, top.id, north.id, credits("400"), actor=OPERATOR)
    assert (moved.parent.available, moved.child.available) == (credits("600"), credits("400"))
    (sent,) = reports.list_transfers(uow, top.id, kind=TransferKind.TO_CHILD)
    (received,) = reports.list_transfers(uow, north.id, kind=TransferKind.FROM_PARENT)
    assert sent.batch_id == received.batch_id == moved.batch_id
    assert sent.amount == received.amount == credits("400")
    allot_down(uow, top, south, "300")
    allot_down(uow, north, district.modelling, "150")
    allot_down(uow, north, district.animation, "150")
    allot_down(uow, south, district.film, "200")
    assert pools(uow, district) == {
        "district": credits("300"),
        "north": credits("100"),
        "south": credits("100"),
        "modelling": credits("150"),
        "animation": credits("150"),
        "film": credits("200"),
    }

    # Step 3: the students join and their instructors allot.
    modelling = add_members(uow, district.modelling.id, 3)
    animation = add_members(uow, district.animation.id, 2)
    film = add_members(uow, district.film.id, 4)
    allot_each(uow, district.modelling, modelling, "40")
    allot_each(uow, district.animation, animation, "50")
    allot_each(uow, district.film, film, "40")
    assert rollup(uow, top.id) == TABLE["allotted down"]
    # A school's roll-up covers itself and its classes only: North 100 + 30 + 50 in pools.
    north_rollup = orgs.get_org(uow, north.id).rollup
    assert (north_rollup.orgs, north_rollup.members, north_rollup.available) == (
        3,
        1 + (1 + 3) + (1 + 2),
        credits("180"),
    )

    # Step 4: renders.
    for student, times in zip(modelling, (2, 3, 5), strict=True):
        render(uow, district.modelling, student, times)
    for student in animation:
        render(uow, district.animation, student, 4)
    for student in film:
        render(uow, district.film, student, 3)
    assert rollup(uow, top.id) == TABLE["rendered"]
    assert orgs.get_org(uow, district.film.id).rollup.usage == {"renders": 12, "frames": 2880}

    # Step 5: take-backs, up one level each; what cannot be covered moves nothing.
    take_back(uow, north, district.animation, "20")
    take_back(uow, top, south, "60")
    after_take_backs = pools(uow, district)
    assert after_take_backs == {
        "district": credits("360"),
        "north": credits("120"),
        "south": credits("40"),
        "modelling": credits("30"),
        "animation": credits("30"),
        "film": credits("40"),
    }
    with pytest.raises(InsufficientCredits):
        families.take_back_from_child(uow, top.id, south.id, credits("40.000001"), actor=OPERATOR)
    with pytest.raises(InsufficientCredits):
        families.allot_to_child(uow, top.id, north.id, credits("360.000001"), actor=OPERATOR)
    assert pools(uow, district) == after_take_backs
    assert rollup(uow, top.id) == TABLE["taken back"]

    # Step 6: no fourth level.
    with pytest.raises(InvalidInput) as refused:
        child(uow, district.modelling, "A class inside a class")
    assert refused.value.code == "validation_error"
    assert families.list_children(uow, district.modelling.id) == []
    assert rollup(uow, top.id)["orgs"] == 6

    # Step 7: Modelling's reset stays inside Modelling.
    north_before = reports.get_balance(uow, north.id)
    north_transfers = reports.list_transfers(uow, north.id, limit=500)
    result = resets.reset_org(uow, district.modelling.id, actor=OPERATOR)
    assert (result.removed, result.revoked) == (3, credits("95"))
    assert reports.get_balance(uow, north.id) == north_before
    assert reports.list_transfers(uow, north.id, limit=500) == north_transfers
    assert reports.get_balance(uow, district.modelling.id).available == credits("125")
    assert rollup(uow, top.id) == TABLE["Modelling reset"]

    # Step 8: a day of seats, two paused days, a day again.
    clock.advance(days=1)
    assert rollup(uow, top.id) == TABLE["a day of seats"]
    orgs.set_paused(uow, top.id, paused=True, actor=OPERATOR)
    for _, org in district.orgs():
        assert reports.get_balance(uow, org.id).burn_rate_per_year == 0, org.name
    clock.advance(days=2)
    assert rollup(uow, top.id) == TABLE["paused two days"]
    orgs.set_paused(uow, top.id, paused=False, actor=OPERATOR)
    seats = {"district": 1, "north": 1, "south": 1, "modelling": 1, "animation": 3, "film": 5}
    for name, org in district.orgs():
        assert reports.get_balance(uow, org.id).burn_rate_per_year == credits("365") * seats[name]
    clock.advance(days=1)

    assert rollup(uow, top.id) == TABLE["final"]
    assert pools(uow, district) == {
        "district": credits("358"),
        "north": credits("118"),
        "south": credits("38"),
        "modelling": credits("123"),
        "animation": credits("24"),
        "film": credits("30"),
    }
    final = TABLE["final"]
    assert final["available"] + final["allocated"] + final["used"] + final["metered"] == credits(
        "1000"
    )
    # `creditpool audit`: every invariant, the family's twin transfers included, holds.
    report = audit.audit(uow)
    assert report.clean, report.breaches


def test_the_table_is_read_whole() -> None:
    """The docstring's table has every step the story asserts, so none is skipped silently."""
    assert list(TABLE) == [
        "bought",
        "schools and classes",
        "allotted down",
        "rendered",
        "taken back",
        "Modelling reset",
        "a day of seats",
        "paused two days",
        "final",
    ]
