"""A call of the API described once, for the sync and the async client to send alike.

Each endpoint is a function returning a `Call` (one answer) or a `ListCall` (a list that
follows `next_cursor`); the clients only send them. Arguments are turned into the wire's
shapes here: amounts into decimal strings, times into RFC 3339.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from pydantic import BaseModel

from creditpool.client._models import Page

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

Query = dict[str, str]


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and how to read its answer."""

    method: str
    path: str  # under /api/v1, or the server's root when `root` is true
    parse: Callable[[Any], T]
    query: Query = field(default_factory=dict)
    body: Any = None
    idempotency_key: str | None = None
    root: bool = False


@dataclass(frozen=True)
class ListCall(Generic[T]):
    """A list: the request of its first page and how to read each item."""

    path: str
    item: Callable[[Any], T]
    query: Query = field(default_factory=dict)

    def page(self, cursor: str | None) -> Call[Page[T]]:
        """The call that fetches the page after `cursor` (the first with None)."""
        query = dict(self.query)
        if cursor is not None:
            query["cursor"] = cursor
        return Call("GET", self.path, self._read_page, query)

    def _read_page(self, body: Any) -> Page[T]:
        return Page([self.item(item) for item in body["items"]], body.get("next_cursor"))


def segment(value: str) -> str:
    """An id as one path segment: nothing in it can reach another path."""
    return quote(value, safe="")


def parsed(model: type[M]) -> Callable[[Any], M]:
    """Read an answer as `model`."""
    return model.model_validate


def nothing(_: Any) -> None:
    """Read an answer with no body (204, 202)."""


def decimal_string(value: Decimal | int) -> str:
    """An amount as the API's decimal string; floats are refused, they are not exact."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise TypeError(f"an amount is a Decimal or an int, not {type(value).__name__}")
    return format(Decimal(value), "f")


def optional_decimal_string(value: Decimal | int | None) -> str | None:
    """An amount as a decimal string, or None left as None."""
    return None if value is None else decimal_string(value)


def timestamp(value: datetime) -> str:
    """A timezone-aware time as RFC 3339."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("a time must carry its timezone (datetime.now(UTC), say)")
    return value.isoformat()


def without_none(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON object of the fields that were given."""
    return {name: value for name, value in fields.items() if value is not None}


def list_query(limit: int | None, **filters: str | None) -> Query:
    """A list's query string: page size and filters, those given."""
    query = {name: value for name, value in filters.items() if value is not None}
    if limit is not None:
        query["limit"] = str(limit)
    return query
