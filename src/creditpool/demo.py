"""A demo that tells the three stories creditpool is for, on an empty database.

It goes through the services like any other interface, and returns what it did as lines of
text. On a database that has orgs already, it adds nothing and says so.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select

from creditpool.demo_school import School, fill_school
from creditpool.domain.amounts import credits, format_credits
from creditpool.domain.model import Role, Seat
from creditpool.domain.policies import SettingsChange
from creditpool.services import credits as credit_service
from creditpool.services import groups, members, orgs, reports, users
from creditpool.services.targets import Target
from creditpool.services.usage import charge_usage
from creditpool.storage.schema import Org, User
from creditpool.storage.unit_of_work import UnitOfWork

__all__ = ["School", "fill_demo", "fill_school"]

OPERATOR_EMAIL = "operator@demo.creditpool.test"
ACTOR = "demo"
# Each demo account gets its own random password, printed once: a demo left running where
# others can reach it must not open with a password anyone can read in the source.
PASSWORD_BYTES = 12


def _confirmed(user: User) -> None:
    # The demo's addresses are made up: nobody could follow a confirmation link sent to them.
    user.email_verified = True


@dataclass
class _Accounts:
    """The demo's people and their passwords, in the order they were made."""

    lines: list[str] = field(default_factory=list)

    def add(self, uow: UnitOfWork, email: str, name: str) -> users.UserView:
        password = secrets.token_urlsafe(PASSWORD_BYTES)
        user = users.create_user(
            uow, email=email, name=name, password=password, on_created=_confirmed
        )
        self.lines.append(f"{user.email}  {password}")
        return user


def _is_empty(uow: UnitOfWork) -> bool:
    with uow:
        return uow.session.scalars(select(Org.id).limit(1)).first() is None


def _person(uow: UnitOfWork, accounts: _Accounts, name: str) -> users.UserView:
    return accounts.add(uow, f"{name.split()[0].lower()}@demo.creditpool.test", name)


def fill_demo(uow: UnitOfWork) -> list[str]:
    """Create the demo orgs if the database has none; return a walkthrough of what happened,
    ending with one `e-mail  password` line for each account it made."""
    if not _is_empty(uow):
        return [
            "the database already has orgs: the demo adds nothing (its passwords were printed "
            "when it was made)"
        ]
    accounts = _Accounts()
    accounts.add(uow, OPERATOR_EMAIL, "Operator")
    users.grant_operator(uow, OPERATOR_EMAIL)
    lines: list[str] = []
    lines += _render_class(uow, accounts)
    lines += _export_team(uow, accounts)
    lines += _metered_school(uow, accounts)
    lines.append("")
    lines.append(
        f"Sign in with one of these demo accounts (e-mail, then password), shown this once; "
        f"{OPERATOR_EMAIL} is the operator:"
    )
    return lines + accounts.lines


def _render_class(uow: UnitOfWork, accounts: _Accounts) -> list[str]:
    instructor = _person(uow, accounts, "Iris Instructor")
    org = orgs.create_org(uow, name="Render class 3B", owner_user_id=instructor.id, actor=ACTOR)
    credit_service.record_purchase(uow, org.id, credits("100"), reference="PO-1001", actor=ACTOR)
    students = [
        members.add_member(uow, org.id, user_id=_person(uow, accounts, name).id, actor=ACTOR)
        for name in ("Ada Student", "Ben Student", "Cleo Student")
    ]
    batch = credit_service.allocate_credits(
        uow, org.id, Target.all_students(), credits("10"), actor=instructor.id
    )
    for student, renders in zip(students, (3, 1, 0), strict=True):
        for _ in range(renders):
            charge_usage(
                uow,
                org.id,
                student.id,
                credits("1.5"),
                metrics={"renders": 1, "frames": 240},
                actor=ACTOR,
            )
    balance = reports.get_balance(uow, org.id)
    lines = [
        f"Allocation: {org.name!r} ({org.id}), instructor {instructor.email}",
        f"  bought 100 credits, allotted {format_credits(batch.total)} to 3 students",
        f"  after 4 renders: {format_credits(balance.available)} in the pool, "
        f"{format_credits(balance.allocated)} in wallets, {format_credits(balance.used)} used",
    ]
    for member in members.list_members(uow, org.id):
        if member.role == Role.MEMBER:
            lines.append(
                f"    {member.name}: {format_credits(member.credits_available)} available, "
                f"{member.usage.get('renders', 0)} renders, {member.usage.get('frames', 0)} frames"
            )
    return lines


def _export_team(uow: UnitOfWork, accounts: _Accounts) -> list[str]:
    lead = _person(uow, accounts, "Eve Editor")
    policy = SettingsChange(
        returnable=False,
        auto_enabled=True,
        auto_bundle=credits("5"),
        auto_max_per_member=credits("20"),
    )
    org = orgs.create_org(
        uow, name="Export studio", owner_user_id=lead.id, settings=policy, actor=ACTOR
    )
    credit_service.record_purchase(uow, org.id, credits("50"), actor=ACTOR)
    artist = members.add_member(
        uow, org.id, user_id=_person(uow, accounts, "Finn Artist").id, actor=ACTOR
    )
    result = charge_usage(uow, org.id, artist.id, credits("7"), metrics={"exports": 1}, actor=ACTOR)
    return [
        f"Automatic allocation: {org.name!r} ({org.id}), bundles of 5 up to 20, not returnable",
        f"  {artist.name} exported for 7 credits: topped up {format_credits(result.auto_allocated)}"
        f" automatically, {format_credits(result.member.credits_available)} left",
    ]


def _metered_school(uow: UnitOfWork, accounts: _Accounts) -> list[str]:
    principal = _person(uow, accounts, "Paula Principal")
    rates = SettingsChange(rate_licensed=credits("1"), rate_unlicensed=credits("0.1"))
    org = orgs.create_org(
        uow, name="Hill school", owner_user_id=principal.id, settings=rates, actor=ACTOR
    )
    credit_service.record_purchase(uow, org.id, credits("25"), actor=ACTOR)
    group = groups.create_group(uow, org.id, "Year 7 music", actor=ACTOR)
    pupils = [
        members.add_member(
            uow, org.id, user_id=_person(uow, accounts, name).id, seat=seat, actor=ACTOR
        )
        for name, seat in (
            ("Gus Pupil", Seat.LICENSED),
            ("Hana Pupil", Seat.LICENSED),
            ("Ivo Pupil", Seat.UNLICENSED),
            ("Jade Pupil", Seat.EXTERNAL),
        )
    ]
    groups.set_group_members(uow, org.id, group.id, [pupil.id for pupil in pupils])
    now = reports.get_balance(uow, org.id)
    in_a_year = reports.get_balance(uow, org.id, at=now.at + timedelta(days=365))
    return [
        f"Seat metering: {org.name!r} ({org.id}), licensed 1 and unlicensed 0.1 credit a year",
        f"  3 licensed seats (the principal, 2 pupils), 1 unlicensed, 1 external: "
        f"{format_credits(now.burn_rate_per_day)} credits a day",
        f"  25 credits now; in a year {format_credits(in_a_year.available)}; "
        f"runs out {now.depletes_at:%Y-%m-%d}"
        if now.depletes_at
        else "  nothing burns",
    ]
