"""An org's members and transfers as rows of text for a CSV file, read a page at a time.

Each page is its own short read, so an export of a million transfers holds one page in memory
and never one long transaction; rows written while an export runs may or may not be in it.
Cells are made inert for spreadsheets: one that would start a formula gets a leading `'`.
A transfer's `lots` cell lists the lots it moved as `lot_id:amount;lot_id:amount`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from sqlalchemy import select

from creditpool.domain.amounts import format_credits
from creditpool.domain.errors import NotFound
from creditpool.domain.model import MemberStatus
from creditpool.services import groups, members, reports, roster
from creditpool.services.lookups import load_org
from creditpool.services.users import normalise_email
from creditpool.services.views import LotShareView
from creditpool.storage.schema import Member, User
from creditpool.storage.unit_of_work import UnitOfWork

PAGE = 500  # rows read at a time

TRANSFER_COLUMNS = [
    "id",
    "created_at",
    "kind",
    "from",
    "to",
    "amount",
    "member_id",
    "reference",
    "metrics",
    "actor",
    "batch_id",
    "lots",
]


@dataclass(frozen=True)
class Export:
    """A CSV's header and its rows, read lazily, page by page, as they are iterated."""

    header: list[str]
    rows: Iterator[list[str]]


def export_members(uow: UnitOfWork, org_id: str, *, status: MemberStatus | None = None) -> Export:
    """Every member of the org (or those of one status) with its figures, usage totals (a
    column per metric) and groups, by id; NotFound for an unknown org."""
    with uow:
        load_org(uow, org_id)
    metrics = roster.metric_names(uow, org_id)
    header = [
        "id",
        "name",
        "email",
        "role",
        "seat",
        "status",
        "credits_available",
        "credits_held",
        "credits_allocated",
        "credits_used",
        "auto_allocated",
        *metrics,
        "groups",
    ]

    def rows() -> Iterator[list[str]]:
        after = None
        while True:
            page = members.list_members(uow, org_id, status=status, after=after, limit=PAGE)
            names = groups.group_names(uow, org_id, {g for m in page for g in m.groups})
            for m in page:
                yield _inert(
                    [
                        m.id,
                        m.name,
                        m.email,
                        m.role,
                        m.seat,
                        m.status,
                        format_credits(m.credits_available),
                        format_credits(m.credits_held),
                        format_credits(m.credits_allocated),
                        format_credits(m.credits_used),
                        format_credits(m.auto_allocated),
                        *[str(m.usage.get(name, 0)) for name in metrics],
                        "; ".join(sorted(names.get(g, g) for g in m.groups)),
                    ]
                )
            if len(page) < PAGE:
                return
            after = page[-1].id

    return Export(header, rows())


def export_transfers(uow: UnitOfWork, org_id: str, *, member: str | None = None) -> Export:
    """Every transfer of the org, newest first, or those of one member (by id or e-mail);
    NotFound for an unknown org or member."""
    member_id = None if member is None else member_id_of(uow, org_id, member)
    with uow:
        load_org(uow, org_id)

    def rows() -> Iterator[list[str]]:
        before = None
        while True:
            page = reports.list_transfers(
                uow, org_id, member_id=member_id, before=before, limit=PAGE
            )
            for t in page:
                yield _inert(
                    [
                        t.id,
                        t.created_at.isoformat(),
                        t.kind,
                        t.debit_account,
                        t.credit_account,
                        format_credits(t.amount),
                        t.member_id or "",
                        t.reference or "",
                        json.dumps(t.metrics, sort_keys=True) if t.metrics else "",
                        t.actor,
                        t.batch_id,
                        lots_cell(t.lots),
                    ]
                )
            if len(page) < PAGE:
                return
            before = page[-1].id

    return Export(list(TRANSFER_COLUMNS), rows())


def lots_cell(shares: Iterable[LotShareView]) -> str:
    """The lots a transfer moved as one cell, `lot_id:amount` pairs in the order they were
    spent, separated by `;` (ids hold neither character); empty when it moved none."""
    return ";".join(f"{share.lot_id}:{format_credits(share.amount)}" for share in shares)


def member_id_of(uow: UnitOfWork, org_id: str, member: str) -> str:
    """Return the id of the org's member named by its id or its e-mail; NotFound otherwise."""
    with uow:
        load_org(uow, org_id)
        query = select(Member.id).where(Member.org_id == org_id)
        if "@" in member:
            query = query.join(User, User.id == Member.user_id).where(
                User.email == normalise_email(member)
            )
        else:
            query = query.where(Member.id == member)
        found = uow.session.scalar(query)
    if found is None:
        raise NotFound(f"no member {member} in org {org_id}")
    return found


def _inert(cells: list[str]) -> list[str]:
    """Keep a spreadsheet from running a cell as a formula (a name like "=HYPERLINK(...)")."""
    return ["'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell for cell in cells]
