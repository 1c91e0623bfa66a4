"""The ledger page and the CSV exports of members and transfers, streamed a page at a time."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from creditpool.domain.model import TransferKind
from creditpool.domain.roles import Permission
from creditpool.services import exports, members, orgs, reports, roster
from creditpool.web.pages_org import grant_for
from creditpool.web.session import CurrentUser, PageUow, render

router = APIRouter(include_in_schema=False)
PICKABLE = 200  # members the ledger offers in a list to filter by; more: by id


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
    export = exports.export_members(uow, org)
    return _csv(f"members-{org}.csv", export.header, export.rows)


@router.get("/orgs/{org}/transfers.csv")
def transfers_csv(org: str, uow: PageUow, user: CurrentUser) -> Response:
    """Every transfer, newest first, as CSV, streamed a page at a time."""
    grant_for(uow, user, org, Permission.READ)
    export = exports.export_transfers(uow, org)
    return _csv(f"transfers-{org}.csv", export.header, export.rows)


def _csv(filename: str, header: list[str], rows: Any) -> StreamingResponse:
    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(header)
        for row in rows:
            writer.writerow(row)
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        yield buffer.getvalue()

    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
