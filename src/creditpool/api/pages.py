"""Pagination: `?limit=` (default 50, at most 500) and an opaque `?cursor=`."""

from __future__ import annotations

from typing import Annotated, Any, Protocol, TypeVar

from fastapi import Query

from creditpool.api.schemas import Page

Limit = Annotated[int, Query(ge=1, le=500, description="Items per page (at most 500).")]
Cursor = Annotated[
    str | None, Query(max_length=100, description="`next_cursor` of the previous page.")
]


class _HasId(Protocol):
    id: str


T = TypeVar("T", bound=_HasId)


def page(items: list[T], limit: int) -> Page[Any]:
    """Return a page from `limit + 1` fetched items; the extra one says there is more."""
    more = len(items) > limit
    shown = items[:limit]
    return Page(items=shown, next_cursor=shown[-1].id if more and shown else None)
