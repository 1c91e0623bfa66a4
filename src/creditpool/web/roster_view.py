"""The class manager's members table as the address names it: search, filters, order, page.

The same query string rides on every form of the page, so an action leaves the person where
they were (on page 3 of "seat: unlicensed", say), and "every matching member" acts on exactly
the filter the table showed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from creditpool.domain.errors import InvalidInput
from creditpool.domain.model import MemberStatus, Role, Seat
from creditpool.services.roster import RosterFilter, RosterSort

PER_PAGE = 50
MAX_PAGE = 1_000_000


@dataclass(frozen=True)
class RosterView:
    """What the members table shows: a filter, an order and a page (1 is the first)."""

    filter: RosterFilter = field(default_factory=RosterFilter)
    sort: RosterSort = field(default_factory=RosterSort)
    page: int = 1

    @property
    def offset(self) -> int:
        """How many matching members come before this page."""
        return (self.page - 1) * PER_PAGE

    def query(self, **changes: Any) -> str:
        """The query string of this view, or of it with `changes` (filter fields, `sort`,
        `descending`, `page`): only what differs from the defaults, so the usual address stays
        bare."""
        chosen, order, page = self.filter, self.sort, self.page
        fields = {"search", "group_id", "seat", "role", "status"}
        if fields & changes.keys():
            chosen = replace(chosen, **{k: v for k, v in changes.items() if k in fields})
            page = 1  # another filter: back to its first page
        if "sort" in changes:
            order = RosterSort(changes["sort"], bool(changes.get("descending", False)))
            page = 1
        page = changes.get("page", page)
        values = {
            "q": chosen.search,
            "group": chosen.group_id or "",
            "seat": chosen.seat or "",
            "role": chosen.role or "",
            "status": "" if chosen.status == MemberStatus.ACTIVE else chosen.status,
            "sort": "" if order.key == "joined" else order.key,
            "order": "desc" if order.descending else "",
            "page": "" if page == 1 else str(page),
        }
        return urlencode({key: value for key, value in values.items() if value})

    def sort_query(self, key: str) -> str:
        """The query string that sorts by `key`: up first, down when it already sorts up."""
        descending = self.sort.key == key and not self.sort.descending
        return self.query(sort=key, descending=descending)


def read_view(params: Mapping[str, str]) -> RosterView:
    """Parse the members table's query string; InvalidInput for a value it cannot be."""
    page_text = params.get("page", "") or "1"
    if not page_text.isdigit() or not 1 <= int(page_text) <= MAX_PAGE:
        raise InvalidInput(f"a page is a number from 1 to {MAX_PAGE}")
    chosen = RosterFilter(
        search=params.get("q", "").strip(),
        group_id=params.get("group") or None,
        seat=_choice(Seat, params.get("seat")),
        role=_choice(Role, params.get("role")),
        status=_choice(MemberStatus, params.get("status")) or MemberStatus.ACTIVE,
    )
    order = RosterSort(params.get("sort") or "joined", params.get("order") == "desc")
    order.check()
    return RosterView(chosen, order, int(page_text))


def _choice(kind: Any, value: str | None) -> Any:
    if not value:
        return None
    try:
        return kind(value)
    except ValueError as error:
        raise InvalidInput(f"{value!r} is not one of {[item.value for item in kind]}") from error
