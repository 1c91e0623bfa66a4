"""The webhook events of lots: `credits.expiring` a week before a lot lapses, `credits.expired`
when it has.

`credits.expired` is written by each expiry posted (services/expiry.py), whoever posts it: a
write, a request's authorization or the worker. It names what lapsed, from the pool and from
the wallets, and carries the org's balance as the change leaves it: the event is written just
before the transaction commits (a hold's capture, say, counts its usage after letting an
expired lot's credits go), in that transaction still.

`credits.expiring` is time's doing, so the worker writes it (`warn_expiring`): once for each
lot whose `expires_at` comes within WARNING and that still holds credits in the pool or a
wallet, marked by `lots.warned_at`. Only orgs with an endpoint for the event are looked at (the
org row says so, as services/events.py reads it), and nothing is marked in the others: an
endpoint subscribed later in the week still hears of the lots that lapse after it subscribed.
A lot that holds nothing when its week begins is announced if and when credits come back to it
(a child gives some back), while its expiry is still ahead.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import ColumnElement, exists, select, update
from sqlalchemy.orm import Session

from creditpool.domain.model import AccountKind
from creditpool.services import event_bodies, events, lookups, lot_views
from creditpool.services.lots import Share
from creditpool.services.transactions import run_write
from creditpool.services.views import balance_view
from creditpool.storage.schema import Lot, LotBalance, Org
from creditpool.storage.unit_of_work import UnitOfWork

# How long before its expiry a lot is announced.
WARNING = timedelta(days=7)
# Orgs the worker reads per query of those with lots to announce.
SWEEP_BATCH = 100


def announce_expired(
    uow: UnitOfWork, org_id: str, by_account: Mapping[str, Sequence[Share]]
) -> None:
    """Write `credits.expired` for an expiry just posted (the shares each account lost),
    just before the open transaction commits; nothing when nobody listens (the org row says)."""
    org = uow.session.get(Org, org_id)
    if org is None or not events.subscribed(org, events.CREDITS_EXPIRED):
        return
    lapsed: dict[str, int] = defaultdict(int)
    from_pool = from_wallets = 0
    for account_id, shares in by_account.items():
        for lot_id, amount in shares:
            lapsed[lot_id] += amount
            if account_id == AccountKind.POOL:
                from_pool += amount
            else:
                from_wallets += amount

    def body() -> event_bodies.JSON:
        balance = balance_view(uow, org, uow.now)
        return event_bodies.expired_json(sorted(lapsed.items()), from_pool, from_wallets, balance)

    def write(_: Session) -> None:
        events.emit(uow, org, events.CREDITS_EXPIRED, body)

    uow.before_commit(write)


def warn_expiring(uow: UnitOfWork) -> int:
    """Announce every lot whose expiry comes within WARNING, org by org (SWEEP_BATCH orgs per
    read, each org in a transaction of its own); return how many lots. For the worker."""
    due = lookups.orgs_in_batches(
        uow,
        lambda now: (
            (Org.next_expiry_at <= now + WARNING)
            & Org.webhook_events.like(f"%{events.CREDITS_EXPIRING}%")
            & exists().where(Lot.org_id == Org.id, _unannounced(now), _holding())
        ),
        SWEEP_BATCH,
    )
    return sum(run_write(uow, partial(_warn_org, uow, org_id)) for batch in due for org_id in batch)


def _unannounced(now: datetime) -> ColumnElement[bool]:
    """A lot whose week before its expiry has begun, not announced yet."""
    return Lot.warned_at.is_(None) & (Lot.expires_at > now) & (Lot.expires_at <= now + WARNING)


def _holding() -> ColumnElement[bool]:
    """A lot that some pool or wallet of its org holds credits of (as posted)."""
    return exists().where(
        LotBalance.org_id == Lot.org_id, LotBalance.lot_id == Lot.id, LotBalance.amount > 0
    )


def _warn_org(uow: UnitOfWork, org_id: str) -> int:
    """Announce the org's lots due a warning that still hold credits, marking each; the
    conditional mark makes a lot another worker announced meanwhile count once."""
    org = uow.session.get(Org, org_id)
    if org is None or not events.subscribed(org, events.CREDITS_EXPIRING):
        return 0
    now = uow.now
    due = set(uow.session.scalars(select(Lot.id).where(Lot.org_id == org_id, _unannounced(now))))
    # Exact figures: the burn not yet posted may have spent what the pool held of a lot.
    holding = [
        view
        for view in lot_views.list_lots(uow, org, now)
        if view.id in due and view.in_pool + view.in_wallets > 0
    ]
    if not holding:
        return 0
    marked = set(
        uow.session.scalars(
            update(Lot)
            .where(
                Lot.org_id == org_id,
                Lot.id.in_([view.id for view in holding]),
                Lot.warned_at.is_(None),
            )
            .values(warned_at=now)
            .returning(Lot.id)
        )
    )
    announced = [event_bodies.lot_json(view) for view in holding if view.id in marked]
    events.emit_many(uow, org, events.CREDITS_EXPIRING, announced)
    return len(announced)
