"""The orgs as families, for the operator's console: each top org followed by its children and
theirs, indented, a page of top orgs at a time."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import func, select

from creditpool.services.views import OrgView, org_view
from creditpool.storage.schema import Org
from creditpool.storage.unit_of_work import UnitOfWork

DESCENDANTS_SHOWN = 500  # orgs below a page's top orgs listed at most; the page says how many more


@dataclass(frozen=True)
class TreeRow:
    """One org in the tree: how deep it sits (1 at the top) and whether an ancestor is paused."""

    org: OrgView
    depth: int
    ancestor_paused: bool


@dataclass(frozen=True)
class OrgTree:
    """A page of the tree: its rows in order, the id the next page starts after (None on the
    last), and how many orgs below this page's top orgs were left out."""

    rows: list[TreeRow]
    next_after: str | None
    descendants_left_out: int


def org_tree(uow: UnitOfWork, *, after: str | None = None, limit: int = 100) -> OrgTree:
    """Return `limit` top orgs by id from after `after`, each followed depth-first by its
    descendants (siblings by name); at most DESCENDANTS_SHOWN of those, shallowest first."""
    with uow:
        query = select(Org).where(Org.parent_id.is_(None)).order_by(Org.id).limit(limit + 1)
        if after is not None:
            query = query.where(Org.id > after)
        tops = list(uow.session.scalars(query))
        next_after = tops[limit - 1].id if len(tops) > limit else None
        tops = tops[:limit]
        roots = [top.id for top in tops]
        below: list[Org] = []
        left_out = 0
        if roots:
            in_families = Org.root_id.in_(roots) & Org.parent_id.is_not(None)
            # Shallowest first, so a listed org's parent is always listed too.
            below = list(
                uow.session.scalars(
                    select(Org)
                    .where(in_families)
                    .order_by(Org.depth, Org.name, Org.id)
                    .limit(DESCENDANTS_SHOWN + 1)
                )
            )
            if len(below) > DESCENDANTS_SHOWN:
                below = below[:DESCENDANTS_SHOWN]
                counted = uow.session.scalar(select(func.count()).where(in_families))
                left_out = int(counted or 0) - DESCENDANTS_SHOWN
        children: dict[str, list[Org]] = defaultdict(list)
        for org in below:  # already by name within each depth
            children[org.parent_id or ""].append(org)
        rows: list[TreeRow] = []

        def add(org: Org) -> None:
            # The console shows no usage: leave out summing every member's totals.
            view = org_view(uow, org, summed_usage=False)
            rows.append(TreeRow(view, org.depth, org.ancestor_paused))
            for child in children.get(org.id, []):
                add(child)

        for top in tops:
            add(top)
        return OrgTree(rows, next_after, left_out)
