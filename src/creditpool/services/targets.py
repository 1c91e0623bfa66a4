"""Who a batch action is for: named members, every student, a group, or every member a
roster filter matches (the class manager's "every matching member")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select

from creditpool.domain.errors import InvalidInput, PreviewOutdated
from creditpool.domain.model import MemberStatus, Role
from creditpool.services.lookups import load_active_members, load_group
from creditpool.services.roster import RosterFilter, check_filter, matching
from creditpool.storage.schema import GroupMember, Member
from creditpool.storage.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class Target:
    """Exactly one of: member ids, `everyone` (active members whose role is member), a group,
    the active members a roster filter matches (`expected`: as many as the caller saw)."""

    member_ids: tuple[str, ...] | None = None
    everyone: bool = False
    group_id: str | None = None
    matching: RosterFilter | None = None
    expected: int | None = None

    @classmethod
    def members(cls, member_ids: Sequence[str]) -> Target:
        """Target these members."""
        return cls(member_ids=tuple(member_ids))

    @classmethod
    def all_students(cls) -> Target:
        """Target every active member whose role is member."""
        return cls(everyone=True)

    @classmethod
    def group(cls, group_id: str) -> Target:
        """Target the active members of a group."""
        return cls(group_id=group_id)

    @classmethod
    def filtered(cls, chosen: RosterFilter, *, expected: int | None = None) -> Target:
        """Target every active member the filter matches; with `expected`, refuse
        (PreviewOutdated) when that many no longer match, so an action never reaches members
        its caller did not count."""
        return cls(matching=chosen, expected=expected)

    def describe(self) -> dict[str, object]:
        """Return the target as plain data, for idempotency fingerprints."""
        described: dict[str, object] = {
            "members": self.member_ids,
            "everyone": self.everyone,
            "group": self.group_id,
        }
        if self.matching is not None:
            described |= {"matching": self.matching.describe(), "expected": self.expected}
        return described

    def resolve(self, uow: UnitOfWork, org_id: str) -> list[Member]:
        """Return the active members targeted; NotFound for an unknown or removed one."""
        chosen = sum(
            (
                self.member_ids is not None,
                self.everyone,
                self.group_id is not None,
                self.matching is not None,
            )
        )
        if chosen != 1:
            raise InvalidInput("name exactly one of: member ids, all, a group, a filter")
        if self.member_ids is not None:
            return load_active_members(uow, org_id, self.member_ids)
        if self.matching is not None:
            return self._resolve_filter(uow, org_id, self.matching)
        query = select(Member).where(Member.org_id == org_id, Member.status == MemberStatus.ACTIVE)
        if self.everyone:
            query = query.where(Member.role == Role.MEMBER)
        else:
            assert self.group_id is not None
            load_group(uow, org_id, self.group_id)
            query = query.join(
                GroupMember,
                (GroupMember.org_id == Member.org_id) & (GroupMember.member_id == Member.id),
            ).where(GroupMember.group_id == self.group_id)
        return list(uow.session.scalars(query.order_by(Member.id)))

    def _resolve_filter(self, uow: UnitOfWork, org_id: str, chosen: RosterFilter) -> list[Member]:
        if chosen.status != MemberStatus.ACTIVE:
            raise InvalidInput("only active members can be given or lose credits")
        check_filter(uow, org_id, chosen)
        found = list(uow.session.scalars(matching(org_id, chosen).order_by(Member.id)))
        if self.expected is not None and len(found) != self.expected:
            raise PreviewOutdated(
                f"{len(found)} members match now, not the {self.expected} shown: "
                "nothing was done; look at the list again"
            )
        return found
