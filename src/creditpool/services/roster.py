"""The roster: an org's members a page at a time, searched, filtered and sorted in SQL.

An org may have 100,000 members: nothing here loads them all. A page is one query with
LIMIT/OFFSET over the members that match, joined to what it sorts by, and one count; the views
of the page's rows are then built as everywhere else (services.views). The same filter names
the members a batch action acts on ("every matching member", services.targets).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select, text

from creditpool.domain.errors import InvalidInput
from creditpool.domain.model import MemberStatus, Role, Seat
from creditpool.domain.text import check_clean_text
from creditpool.services.ledger import CHUNK
from creditpool.services.lookups import load_group, load_org
from creditpool.services.views import MemberView, OrgView, member_views, org_view
from creditpool.storage.schema import Account, Group, GroupMember, Member, Org, UsageTotal, User
from creditpool.storage.unit_of_work import UnitOfWork

MAX_SEARCH_LENGTH = 200
MAX_PER_PAGE = 500
SMALL_ORG = 20_000
METRIC_PREFIX = "metric:"
# What a page may sort by; a usage metric sorts as "metric:<name>".
SORTS = ("joined", "name", "email", "available", "allocated", "used")


@dataclass(frozen=True)
class RosterFilter:
    """Which members: a search of names and e-mail addresses, a group, a seat, a role, and
    active or removed ones."""

    search: str = ""
    group_id: str | None = None
    seat: Seat | None = None
    role: Role | None = None
    status: MemberStatus = MemberStatus.ACTIVE

    def describe(self) -> dict[str, object]:
        """Return the filter as plain data, for idempotency fingerprints."""
        return {
            "search": self.search,
            "group": self.group_id,
            "seat": self.seat,
            "role": self.role,
            "status": self.status,
        }

    @property
    def narrowed(self) -> bool:
        """Whether it names more than a status (a search, group, seat or role)."""
        return bool(self.search or self.group_id or self.seat or self.role)


@dataclass(frozen=True)
class RosterSort:
    """The order of a roster: one figure (`SORTS`, or a metric), up or down; ties by id."""

    key: str = "joined"
    descending: bool = False

    def check(self) -> None:
        """Raise InvalidInput for an order that is not one of the roster's."""
        if self.key in SORTS:
            return
        metric = self.key.removeprefix(METRIC_PREFIX)
        if self.key == metric or not metric or len(metric) > 64:
            raise InvalidInput(f"sort by one of {list(SORTS)} or metric:<name>")
        check_clean_text(metric)


@dataclass(frozen=True)
class RosterPage:
    """One page of matching members, and how many match in all."""

    members: list[MemberView]
    total: int
    offset: int
    limit: int


def check_filter(uow: UnitOfWork, org_id: str, chosen: RosterFilter) -> None:
    """Inside an open unit of work: raise InvalidInput for a bad search, NotFound for a group
    the org does not have."""
    if len(chosen.search) > MAX_SEARCH_LENGTH:
        raise InvalidInput(f"a search is at most {MAX_SEARCH_LENGTH} characters")
    check_clean_text(chosen.search)
    if chosen.group_id is not None:
        load_group(uow, org_id, chosen.group_id)


def matching(
    org_id: str, chosen: RosterFilter, *, with_user: bool = False, small: bool = True
) -> Select[tuple[Member]]:
    """The members of an org that a filter matches, as a query to order, page or count;
    joined to their users when `with_user` asks. `small`: the org has at most SMALL_ORG
    active members (it decides how a search reads)."""
    query = select(Member).where(Member.org_id == org_id, Member.status == chosen.status)
    if chosen.seat is not None:
        query = query.where(Member.seat == chosen.seat)
    if chosen.role is not None:
        query = query.where(Member.role == chosen.role)
    if chosen.group_id is not None:
        query = query.join(
            GroupMember,
            (GroupMember.org_id == Member.org_id)
            & (GroupMember.member_id == Member.id)
            & (GroupMember.group_id == chosen.group_id),
        )
    words = chosen.search.strip().lower()
    if with_user or (words and not small):
        query = query.join(User, User.id == Member.user_id)
    if not words:
        return query
    if not small:
        # A big org's members are a good part of all users: scanning the users (the planner's
        # choice) costs about what reading the members' would.
        return query.where(
            func.lower(User.name).contains(words, autoescape=True)
            | User.email.contains(words, autoescape=True)
        )
    # A small org's search asks each member's user, as a subquery the planner cannot turn
    # round: a join lets it scan every user of the database (all orgs) for the words first.
    found = (
        select(
            func.lower(User.name).contains(words, autoescape=True)
            | User.email.contains(words, autoescape=True)
        )
        .where(User.id == Member.user_id)
        .correlate(Member)
        .scalar_subquery()
    )
    return query.where(found)


def _ordered(org_id: str, chosen: RosterFilter, order: RosterSort, *, small: bool) -> Select[Any]:
    """The matching members joined to what the order needs and ordered by it, ties broken by
    id (so pages never overlap or leave a member out)."""
    query = matching(org_id, chosen, with_user=order.key in ("name", "email"), small=small)
    by: Any
    if order.key == "joined":
        by = Member.id  # ids grow with time: the order in which they first joined
    elif order.key == "name":
        by = func.lower(User.name)
    elif order.key == "email":
        by = User.email
    elif order.key == "available":
        query = query.join(
            Account, (Account.org_id == Member.org_id) & (Account.member_id == Member.id)
        )
        by = Account.balance - Account.held
    elif order.key == "allocated":
        by = Member.allocated_total
    elif order.key == "used":
        by = Member.used_total
    else:
        metric = order.key.removeprefix(METRIC_PREFIX)
        query = query.outerjoin(
            UsageTotal,
            (UsageTotal.org_id == Member.org_id)
            & (UsageTotal.member_id == Member.id)
            & (UsageTotal.metric == metric),
        )
        by = func.coalesce(UsageTotal.total, 0)
    if order.descending:
        return query.order_by(by.desc(), Member.id.desc())
    return query.order_by(by, Member.id)


def _is_small(org: Org) -> bool:
    return org.licensed_seats + org.unlicensed_seats + org.external_seats <= SMALL_ORG


def count_matching(uow: UnitOfWork, org_id: str, org: Org, chosen: RosterFilter) -> int:
    """Inside an open unit of work: how many members a filter matches."""
    if chosen.status == MemberStatus.ACTIVE and not (
        chosen.search or chosen.group_id or chosen.role
    ):
        # The org keeps its active seats counted (the audit checks them): no scan needed.
        counts = {
            Seat.LICENSED: org.licensed_seats,
            Seat.UNLICENSED: org.unlicensed_seats,
            Seat.EXTERNAL: org.external_seats,
        }
        return counts[chosen.seat] if chosen.seat else sum(counts.values())
    members = matching(org_id, chosen, small=_is_small(org))
    return int(uow.session.scalar(members.with_only_columns(func.count()).order_by(None)) or 0)


def list_roster(
    uow: UnitOfWork,
    org_id: str,
    chosen: RosterFilter = RosterFilter(),
    order: RosterSort = RosterSort(),
    *,
    offset: int = 0,
    limit: int = 50,
) -> RosterPage:
    """Return one page of the members a filter matches, in `order`, and how many match."""
    if offset < 0 or not 0 < limit <= MAX_PER_PAGE:
        raise InvalidInput(f"a page starts at 0 or later and holds 1 to {MAX_PER_PAGE} members")
    order.check()
    with uow:
        org = load_org(uow, org_id)
        check_filter(uow, org_id, chosen)
        total = count_matching(uow, org_id, org, chosen)
        page = _ordered(org_id, chosen, order, small=_is_small(org)).offset(offset).limit(limit)
        rows = list(uow.session.scalars(page))
        return RosterPage(member_views(uow, org, rows), total, offset, limit)


def count_active(uow: UnitOfWork, org_id: str) -> int:
    """How many active members the org has, from its seat counts (no scan)."""
    with uow:
        org = load_org(uow, org_id)
        return org.licensed_seats + org.unlicensed_seats + org.external_seats


def metric_names(uow: UnitOfWork, org_id: str) -> list[str]:
    """The usage metrics the org's members have totals of, by name."""
    # A loose index scan, written out: one seek of (org_id, metric) per distinct name, where
    # DISTINCT would read every member's totals. The same SQL on both engines.
    found = text(
        "WITH RECURSIVE names(metric) AS ("
        " SELECT MIN(metric) FROM usage_totals WHERE org_id = :org"
        " UNION ALL"
        " SELECT (SELECT MIN(u.metric) FROM usage_totals u"
        "         WHERE u.org_id = :org AND u.metric > names.metric)"
        " FROM names WHERE names.metric IS NOT NULL"
        ") SELECT metric FROM names WHERE metric IS NOT NULL"
    )
    with uow:
        return sorted(uow.session.scalars(found, {"org": org_id}))


@dataclass(frozen=True)
class GroupName:
    """A group to filter by or act on; its members are not counted (that reads them all)."""

    id: str
    name: str
    member_count: int | None = None


def group_names(uow: UnitOfWork, org_id: str, *, limit: int) -> list[GroupName]:
    """The org's first `limit` groups by name, without counting their members."""
    with uow:
        rows = uow.session.execute(
            select(Group.id, Group.name)
            .where(Group.org_id == org_id)
            .order_by(Group.name)
            .limit(limit)
        ).tuples()
        return [GroupName(group_id, name) for group_id, name in rows]


def member_names(uow: UnitOfWork, org_id: str, member_ids: Collection[str]) -> dict[str, str]:
    """The names of these members of the org, by id (unknown ids are left out)."""
    names: dict[str, str] = {}
    wanted = sorted(set(member_ids))
    with uow:
        for start in range(0, len(wanted), CHUNK):
            rows = uow.session.execute(
                select(Member.id, User.name)
                .join(User, User.id == Member.user_id)
                .where(Member.org_id == org_id, Member.id.in_(wanted[start : start + CHUNK]))
            ).tuples()
            names.update((member_id, name) for member_id, name in rows)
    return names


def org_at_a_glance(uow: UnitOfWork, org_id: str) -> OrgView:
    """The org as the class manager heads it: name, settings, balance now, and `usage` left
    empty. Summing every member's usage totals for it reads two rows per member (200 ms at
    100,000 members, on every page load), for figures the class manager does not show (its
    table has each member's); the API's org (services.orgs.get_org) has them."""
    with uow:
        return org_view(uow, load_org(uow, org_id), summed_usage=False)
