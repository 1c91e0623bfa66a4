"""Loading an org's rows by id, always scoped by org; a row of another org is not found."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Protocol

from sqlalchemy import ColumnElement, Table, case, or_, select

from creditpool.domain.errors import NotFound
from creditpool.domain.model import MemberStatus
from creditpool.storage.bulk import among
from creditpool.storage.schema import Group, Member, Org
from creditpool.storage.unit_of_work import UnitOfWork


class Settled(Protocol):
    """What says whether an org has something to settle before a write: an Org or a row."""

    period_ends_at: datetime | None
    next_expiry_at: datetime | None


def settlement_due(org: Settled, now: datetime) -> bool:
    """Whether a period boundary or a lot's expiry has passed unposted (load_org settles)."""
    return (org.period_ends_at is not None and org.period_ends_at <= now) or (
        org.next_expiry_at is not None and org.next_expiry_at <= now
    )


def settles_at(orgs: Table) -> ColumnElement[datetime | None]:
    """The org's next instant to settle, in SQL: the sooner of its period boundary and its
    next lot expiry (None when it has neither), labelled `settles_at`."""
    period, expiry = orgs.c.period_ends_at, orgs.c.next_expiry_at
    return case(
        (expiry.is_(None), period),
        (or_(period.is_(None), expiry < period), expiry),
        else_=period,
    ).label("settles_at")


def load_org(uow: UnitOfWork, org_id: str, *, lock: bool = False) -> Org:
    """Return the org; with `lock`, hold its row until commit (the pool's lock), and settle a
    period boundary that has passed first (services/periods.py): a write works in the period
    its instant falls in."""
    query = select(Org).where(Org.id == org_id).execution_options(populate_existing=True)
    if lock:
        query = query.with_for_update(key_share=True)
    org = uow.session.scalars(query).one_or_none()
    if org is None:
        raise NotFound(f"no org {org_id}")
    if lock and settlement_due(org, uow.now):
        # Imported here: settling needs the wallets' helpers, which need these lookups.
        from creditpool.services import expiry, periods

        if org.next_expiry_at is not None and org.next_expiry_at <= uow.now:
            expiry.post_due(uow, org)
        if org.period_ends_at is not None and org.period_ends_at <= uow.now:
            periods.settle_locked(uow, org)
    return org


def load_member(uow: UnitOfWork, org_id: str, member_id: str, *, lock: bool = False) -> Member:
    """Return a member of the org, active or removed."""
    query = select(Member).where(Member.org_id == org_id, Member.id == member_id)
    if lock:
        query = query.with_for_update(key_share=True)
    member = uow.session.scalars(query).one_or_none()
    if member is None:
        raise NotFound(f"no member {member_id} in this org")
    return member


def load_group(uow: UnitOfWork, org_id: str, group_id: str) -> Group:
    """Return a group of the org."""
    group = uow.session.get(Group, (org_id, group_id))
    if group is None:
        raise NotFound(f"no group {group_id} in this org")
    return group


def load_active_members(uow: UnitOfWork, org_id: str, member_ids: Sequence[str]) -> list[Member]:
    """Return these members in the order given, without repeats; NotFound if any is not active."""
    wanted = list(dict.fromkeys(member_ids))
    found: dict[str, Member] = {}
    for start in range(0, len(wanted), 900):
        part = wanted[start : start + 900]
        rows = uow.session.scalars(
            select(Member).where(
                Member.org_id == org_id,
                among(uow.session, Member.id, part),
                Member.status == MemberStatus.ACTIVE,
            )
        )
        found.update((member.id, member) for member in rows)
    missing = [member_id for member_id in wanted if member_id not in found]
    if missing:
        raise NotFound(f"no active member {missing[0]} in this org")
    return [found[member_id] for member_id in wanted]


def orgs_in_batches(
    uow: UnitOfWork, where: Callable[[datetime], ColumnElement[bool]], size: int
) -> Iterator[list[str]]:
    """Yield the ids of the orgs matching `where(now)`, `size` at a time in id order, each
    batch found in a read of its own (the worker's sweeps then write each org in a
    transaction of its own)."""
    after = ""
    while True:
        with uow:
            batch = list(
                uow.session.scalars(
                    select(Org.id)
                    .where(Org.id > after, where(uow.now))
                    .order_by(Org.id)
                    .limit(size)
                )
            )
        if batch:
            yield batch
        if len(batch) < size:
            return
        after = batch[-1]
