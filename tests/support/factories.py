"""Factories for test data, in one place, built through the real services."""

from __future__ import annotations

import itertools

from creditpool.domain.amounts import credits
from creditpool.domain.model import Role, Seat
from creditpool.domain.policies import SettingsChange
from creditpool.services import credits as credit_service
from creditpool.services import groups, members, orgs, users
from creditpool.services.views import GroupView, MemberView, OrgView
from creditpool.storage.unit_of_work import UnitOfWork

OPERATOR = "operator:test"
_numbers = itertools.count(1)


def make_user(
    uow: UnitOfWork, name: str | None = None, *, email: str | None = None
) -> users.UserView:
    """Sign up a new person with a unique e-mail (or the one given)."""
    number = next(_numbers)
    name = name or f"Person {number}"
    return users.create_user(uow, email=email or f"person{number}@example.test", name=name)


def make_org(
    uow: UnitOfWork,
    *,
    name: str = "Render class",
    purchase: str | None = None,
    settings: SettingsChange | None = None,
) -> OrgView:
    """Open an org with a fresh owner, and optionally buy it credits."""
    owner = make_user(uow, "Owner")
    org = orgs.create_org(uow, name=name, owner_user_id=owner.id, settings=settings, actor=OPERATOR)
    if purchase is not None:
        credit_service.record_purchase(uow, org.id, credits(purchase), actor=OPERATOR)
    return org


def add_members(
    uow: UnitOfWork,
    org_id: str,
    count: int,
    *,
    role: Role = Role.MEMBER,
    seat: Seat = Seat.LICENSED,
) -> list[MemberView]:
    """Add `count` new people to the org."""
    return [
        members.add_member(
            uow, org_id, user_id=make_user(uow).id, role=role, seat=seat, actor=OPERATOR
        )
        for _ in range(count)
    ]


def make_group(
    uow: UnitOfWork, org_id: str, member_ids: list[str], *, name: str | None = None
) -> GroupView:
    """Create a group (a class inside the org) holding these active members."""
    group = groups.create_group(uow, org_id, name or f"Class {next(_numbers)}", actor=OPERATOR)
    return groups.set_group_members(uow, org_id, group.id, member_ids)
