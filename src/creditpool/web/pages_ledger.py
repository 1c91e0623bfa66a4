"""The ledger page and the CSV exports of members and transfers, streamed a page at a time."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from creditpool.domain.amounts import format_credits
from creditpool.domain.model import TransferKind
from creditpool.domain.roles import Permission
from creditpool.services import groups, members, orgs, reports, roster
from creditpool.web.pages_org import grant_for
from creditpool.web.session import CurrentUser, PageUow, render

router = APIRouter(include_in_schema=False)
PICKABLE = 200  # members the ledger offers in a list to filter by; more: by id
PAGE = 500  # rows a CSV export reads at a time


@router.get("/orgs/{org}/ledger")
def ledger(
    request: Request,
    org: str,
    uow: PageUow,
    user: CurrentUser,
    member: Annotated[str, Query(max_length=64)] = "",
    kind: Annotated[str, Query(max_length=32)] = "",
    before: Annotated[str, Query(max_length=64)] = "",
) -> HTMLResponse:
    """Every transfer, newest first, by member and kind."""
    grant_for(uow, user, org, Permission.READ)
    chosen_kind = kind if kind in {k.value for k in TransferKind} else None
    rows = reports.list_transfers(
        uow, org, member_id=member or None, kind=chosen_kind, before=before or None, limit=101
    )
    # A short list of people to pick from; a big org's ledger takes a member's id instead
    # (each row of the class manager links to its history).
    people = members.list_members(uow, org, status=None, limit=PICKABLE + 1)
    named = {t.member_id for t in rows[:100] if t.member_id} | ({member} if member else set())
    context = {
        "org": orgs.get_org(uow, org),
        "transfers": rows[:100],
        "older": rows[99].id if len(rows) > 100 else None,
        "people": people if len(people) <= PICKABLE else None,
        "names": roster.member_names(uow, org, named),
        "kinds": [k.value for k in TransferKind],
        "member": member,
        "kind": chosen_kind or "",
    }
    return render(request, "ledger.html", context, user=user)


@router.get("/orgs/{org}/members.csv")
def members_csv(org: str, uow: PageUow, user: CurrentUser) -> Response:
    """Every member with its figures, as CSV, streamed a page of members at a time."""
    grant_for(uow, user, org, Permission.READ)
    metrics = roster.metric_names(uow, org)
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

    def rows() -> Iterator[list[Any]]:
        after = None
        while True:
            batch = members.list_members(uow, org, status=None, after=after, limit=PAGE)
            names = groups.group_names(uow, org, {g for p in batch for g in p.groups})
            for p in batch:
                yield [
                    p.id,
                    p.name,
                    p.email,
                    p.role,
                    p.seat,
                    p.status,
                    format_credits(p.credits_available),
                    format_credits(p.credits_held),
                    format_credits(p.credits_allocated),
                    format_credits(p.credits_used),
                    format_credits(p.auto_allocated),
                    *[p.usage.get(name, 0) for name in metrics],
                    "; ".join(names.get(g, g) for g in p.groups),
                ]
            if len(batch) < PAGE:
                return
            after = batch[-1].id

    return _csv(f"members-{org}.csv", header, rows())


@router.get("/orgs/{org}/transfers.csv")
def transfers_csv(org: str, uow: PageUow, user: CurrentUser) -> Response:
    """Every transfer, newest first, as CSV."""
    grant_for(uow, user, org, Permission.READ)

    def rows() -> Iterator[list[Any]]:
        before = None
        while True:
            batch = reports.list_transfers(uow, org, before=before, limit=PAGE)
            for t in batch:
                yield [
                    t.id,
                    t.created_at.isoformat(),
                    t.kind,
                    t.debit_account,
                    t.credit_account,
                    format_credits(t.amount),
                    t.member_id or "",
                    t.reference or "",
                    json.dumps(t.metrics) if t.metrics else "",
                    t.actor,
                    t.batch_id,
                ]
            if len(batch) < PAGE:
                return
            before = batch[-1].id

    header = [
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
    ]
    return _csv(f"transfers-{org}.csv", header, rows())


def _csv(filename: str, header: list[str], rows: Any) -> StreamingResponse:
    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(header)
        for row in rows:
            writer.writerow([_inert(cell) for cell in row])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        yield buffer.getvalue()

    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _inert(cell: Any) -> Any:
    """Keep a spreadsheet from running a cell as a formula (a name like "=HYPERLINK(...)")."""
    if isinstance(cell, str) and cell[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + cell
    return cell
