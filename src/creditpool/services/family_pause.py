"""A pause flowing down a family: an org paused stops its descendants' seat burn too.

Each org keeps its own `paused` (which also refuses its usage) and `ancestor_paused`, true
while some org above it is paused: its seats then burn nothing, but its usage goes on. Pausing
or resuming an org recomputes `ancestor_paused` for its children and their children, settling
the burn of each whose burn starts or stops, so what burnt before the change is posted at the
old rate. A descendant with another paused ancestor stays stopped when one ancestor resumes.
"""

from __future__ import annotations

from sqlalchemy import or_, select

from creditpool.services import alerts, expiry, metering
from creditpool.storage.schema import Org
from creditpool.storage.unit_of_work import UnitOfWork


def flow_down(uow: UnitOfWork, org: Org, *, actor: str) -> list[Org]:
    """Set `ancestor_paused` on every descendant of `org` (whose row the caller locked, its
    `paused` already changed), settling the burn of each that starts or stops burning; return
    the descendants whose burn changed."""
    children = select(Org.id).where(Org.parent_id == org.id).scalar_subquery()
    # Locked parent before child (services/ledger.py's lock order): children, then theirs.
    descendants = list(
        uow.session.scalars(
            select(Org)
            .where(or_(Org.parent_id == org.id, Org.parent_id.in_(children)))
            .order_by(Org.depth, Org.id)
            .with_for_update(key_share=True)
            .execution_options(populate_existing=True)
        )
    )
    stops = {org.id: org.paused or org.ancestor_paused}
    changed: list[Org] = []
    for descendant in descendants:  # each after its parent
        parent_id = descendant.parent_id or ""
        ancestor_paused = stops[parent_id]
        stops[descendant.id] = descendant.paused or ancestor_paused
        if descendant.ancestor_paused == ancestor_paused:
            continue
        burns_before = not metering.not_burning(descendant)
        if burns_before == (not (descendant.paused or ancestor_paused)):
            descendant.ancestor_paused = ancestor_paused  # paused itself: no burn either way
            continue
        # The burn so far was at the old rate: post it before it starts or stops, after any
        # expiry passed (the burn since then must not count the lapsed lot).
        if descendant.next_expiry_at is not None and descendant.next_expiry_at <= uow.now:
            expiry.post_due(uow, descendant)
        metering.settle(uow, descendant, actor=actor)
        descendant.ancestor_paused = ancestor_paused
        changed.append(descendant)
    uow.session.flush()
    for descendant in changed:
        alerts.check(uow, descendant)  # the burn stopped or started again
    return changed
