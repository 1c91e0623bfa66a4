"""Groups: classes inside an org, handles for batch actions and reports.

A group never changes what anyone burns, and a member may be in any number of groups.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import delete, func, insert, select

from creditpool.domain.errors import AlreadyExists, InvalidInput, NotFound
from creditpool.domain.model import MemberStatus
from creditpool.domain.text import clean_name
from creditpool.services.ledger import chunks
from creditpool.services.lookups import load_active_members, load_group, load_org
from creditpool.services.transactions import run_write
from creditpool.services.views import GroupView
from creditpool.storage.ids import new_id
from creditpool.storage.schema import Group, GroupMember, Member
from creditpool.storage.unit_of_work import UnitOfWork


def _check_name(uow: UnitOfWork, org_id: str, name: str, *, except_id: str | None = None) -> str:
    name = clean_name(name, what="a group name")
    taken = uow.session.scalars(
        select(Group.id).where(Group.org_id == org_id, Group.name == name)
    ).first()
    if taken is not None and taken != except_id:
        raise AlreadyExists(f"the org has a group named {name!r} already")
    return name


def _view(uow: UnitOfWork, group: Group) -> GroupView:
    return group_views(uow, group.org_id, [group])[0]


def group_views(uow: UnitOfWork, org_id: str, groups: Sequence[Group]) -> list[GroupView]:
    """Return groups with the count of their active members."""
    counts = dict(
        uow.session.execute(
            select(GroupMember.group_id, func.count())
            .join(
                Member,
                (Member.org_id == GroupMember.org_id) & (Member.id == GroupMember.member_id),
            )
            .where(
                GroupMember.org_id == org_id,
                GroupMember.group_id.in_([group.id for group in groups]),
                Member.status == MemberStatus.ACTIVE,
            )
            .group_by(GroupMember.group_id)
        )
        .tuples()
        .all()
    )
    return [GroupView(group.id, group.name, counts.get(group.id, 0)) for group in groups]


def create_group(
    uow: UnitOfWork, org_id: str, name: str, *, actor: str, idempotency_key: str | None = None
) -> GroupView:
    """Create an empty group; names are unique within the org."""

    def apply() -> GroupView:
        load_org(uow, org_id)
        group = Group(
            org_id=org_id,
            id=new_id("grp"),
            name=_check_name(uow, org_id, name),
            created_at=uow.now,
        )
        uow.session.add(group)
        uow.session.flush()
        return GroupView(group.id, group.name, 0)

    return run_write(
        uow,
        apply,
        org_id=org_id,
        actor=actor,
        key=idempotency_key,
        operation="create_group",
        arguments={"name": name},
        result_type=GroupView,
    )


def rename_group(uow: UnitOfWork, org_id: str, group_id: str, name: str) -> GroupView:
    """Give a group another name."""

    def apply() -> GroupView:
        group = load_group(uow, org_id, group_id)
        group.name = _check_name(uow, org_id, name, except_id=group_id)
        uow.session.flush()
        return _view(uow, group)

    return run_write(uow, apply)


def set_group_members(
    uow: UnitOfWork, org_id: str, group_id: str, member_ids: Sequence[str]
) -> GroupView:
    """Make these active members the whole of the group's active members.

    Removed members keep their place, so one who comes back finds its groups again.
    """

    def apply() -> GroupView:
        group = _lock_group(uow, org_id, group_id)
        _set_members(uow, org_id, group, member_ids)
        return _view(uow, group)

    return run_write(uow, apply)


def save_group(
    uow: UnitOfWork, org_id: str, group_id: str, *, name: str, member_ids: Sequence[str]
) -> GroupView:
    """Rename a group and set its active members, together or not at all."""

    def apply() -> GroupView:
        group = _lock_group(uow, org_id, group_id)
        group.name = _check_name(uow, org_id, name, except_id=group_id)
        _set_members(uow, org_id, group, member_ids)
        uow.session.flush()
        return _view(uow, group)

    return run_write(uow, apply)


def _lock_group(uow: UnitOfWork, org_id: str, group_id: str) -> Group:
    # The org first: who is active cannot change (a removal, a return) while the group is set.
    load_org(uow, org_id, lock=True)
    group = uow.session.scalars(
        select(Group)
        .where(Group.org_id == org_id, Group.id == group_id)
        .with_for_update(key_share=True)
    ).one_or_none()
    if group is None:
        raise NotFound(f"no group {group_id} in this org")
    return group


def _set_members(uow: UnitOfWork, org_id: str, group: Group, member_ids: Sequence[str]) -> None:
    members = load_active_members(uow, org_id, member_ids)
    active = select(Member.id).where(Member.org_id == org_id, Member.status == MemberStatus.ACTIVE)
    uow.session.execute(
        delete(GroupMember).where(
            GroupMember.org_id == org_id,
            GroupMember.group_id == group.id,
            GroupMember.member_id.in_(active),
        )
    )
    if members:
        uow.session.execute(
            insert(GroupMember),
            [{"org_id": org_id, "group_id": group.id, "member_id": m.id} for m in members],
        )


def delete_group(uow: UnitOfWork, org_id: str, group_id: str) -> None:
    """Delete a group; its members are untouched. Deleting it twice changes nothing."""

    def apply() -> None:
        uow.session.execute(
            delete(GroupMember).where(
                GroupMember.org_id == org_id, GroupMember.group_id == group_id
            )
        )
        uow.session.execute(delete(Group).where(Group.org_id == org_id, Group.id == group_id))

    run_write(uow, apply)


def list_groups(
    uow: UnitOfWork, org_id: str, *, after: str | None = None, limit: int | None = None
) -> list[GroupView]:
    """Return the org's groups by name; a page of them with `after` (the last id of the
    previous page) and `limit`."""
    with uow:
        load_org(uow, org_id)
        query = select(Group).where(Group.org_id == org_id).order_by(Group.name)
        if after is not None:
            last = uow.session.get(Group, (org_id, after))
            if last is None:
                raise InvalidInput("the cursor names a group deleted since; list from the start")
            query = query.where(Group.name > last.name)  # names are unique within the org
        if limit is not None:
            query = query.limit(limit)
        return group_views(uow, org_id, list(uow.session.scalars(query)))


def count_groups(uow: UnitOfWork, org_id: str) -> int:
    """Return how many groups the org has."""
    with uow:
        return (
            uow.session.scalar(
                select(func.count()).select_from(Group).where(Group.org_id == org_id)
            )
            or 0
        )


def group_names(uow: UnitOfWork, org_id: str, group_ids: Collection[str]) -> dict[str, str]:
    """Return the names of these groups of the org, by id."""
    with uow:
        names: dict[str, str] = {}
        for part in chunks(sorted(set(group_ids))):
            rows = uow.session.execute(
                select(Group.id, Group.name).where(Group.org_id == org_id, Group.id.in_(part))
            ).tuples()
            names.update((group_id, name) for group_id, name in rows)
        return names
