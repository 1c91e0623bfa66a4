"""The pool's history as a kept series: one row per UTC day, rolled up from the transfers.

The chart of the pool needs its balance over time. Reading every transfer that moved the pool
on each page load grows with the org's history (an allotment to 100,000 members is 100,000
transfers), so each read first rolls the transfers older than GRACE into their day's row of
`pool_days` (once: the roll-up keeps a mark), and reads only the few transfers after the mark
as they are, a point a batch.

The mark is a transfer id: ids grow with time, so `id > mark` reads the tail on the primary
key. Only transfers older than GRACE are rolled up, so every transaction that wrote them has
committed (one open longer than GRACE would be left out of the series; nothing here runs that
long). Two readers rolling up at once: the first to move the mark (a compare-and-set) writes
the days, the other writes nothing and reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import aliased

from creditpool.domain.model import AccountKind, TransferKind
from creditpool.services.ledger import rowcount
from creditpool.services.totals import MAX_TOTAL, combine, exact_sum
from creditpool.storage.schema import PoolDay, PoolRollup, Transfer
from creditpool.storage.unit_of_work import UnitOfWork

GRACE = timedelta(minutes=10)
NEVER = datetime(1970, 1, 1, tzinfo=UTC)
_POOL = str(AccountKind.POOL)


@dataclass(frozen=True)
class PoolPoint:
    """The pool's posted balance just after one batch of transfers (or one whole day). For
    the seat burn posted then, the balance stood still until `burn_began`, fell in a straight
    line until `burn_ended`, and stood still again until `at`."""

    at: datetime
    balance: int
    burn_began: datetime | None = None
    burn_ended: datetime | None = None


def day_of(at: datetime) -> datetime:
    """Return the first instant of the UTC day `at` falls in."""
    return at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _touches_pool(org_id: str) -> Any:
    return (Transfer.org_id == org_id) & or_(
        Transfer.debit_account_id == _POOL, Transfer.credit_account_id == _POOL
    )


def _after_mark(org_id: str, mark_id: str) -> Any:
    """The org's transfers after `mark_id`, the roll-up's mark as this reader found it ("":
    all of them).

    Written with bounds PostgreSQL cannot see when it plans (the mark, and the org's newest
    id, as subqueries): ids are global, and the planner does not know that one org's are side
    by side, so given the mark's value it takes `id > mark` for most of the table and reads
    it all (0.7 s at 3 million transfers) instead of the few rows on the primary key.
    """
    newest = aliased(Transfer)
    mark = select(
        func.coalesce(
            select(PoolRollup.through_id).where(PoolRollup.org_id == org_id).scalar_subquery(),
            "",
        )
    ).scalar_subquery()
    last = select(func.max(newest.id)).where(newest.org_id == org_id).scalar_subquery()
    # Both marks: this reader's keeps its figures consistent with the balance it read; the
    # stored one keeps the plan on the primary key. They differ only while another reader rolls
    # up at that moment: this read then draws without that roll-up's rows, once.
    after = (Transfer.id > mark_id) & (Transfer.id > mark)
    return (Transfer.org_id == org_id) & after & (Transfer.id <= last)


def _burn(at: datetime, metrics: dict[str, Any] | None) -> tuple[datetime, datetime]:
    """When a posted burn began and ended, from what its metering transfer says."""
    burn = metrics or {}
    began = at - timedelta(seconds=burn.get("began_seconds_ago", 0))
    ended = began + timedelta(seconds=burn.get("burnt_seconds", 0))
    return began, min(ended, at)


def roll_up(uow: UnitOfWork, org_id: str) -> None:
    """Inside run_write: roll the org's pool transfers older than GRACE into their days of
    `pool_days`; one read of the (usually empty) tail when there are none."""
    session = uow.session
    cutoff = uow.now - GRACE
    mark = session.get(PoolRollup, org_id)
    old_id = mark.through_id if mark else ""
    balance = mark.balance if mark else 0
    days: dict[datetime, dict[str, Any]] = {}
    last_id = old_id
    rows = session.execute(
        select(
            Transfer.id,
            Transfer.created_at,
            Transfer.credit_account_id == _POOL,
            Transfer.amount,
            Transfer.kind,
            Transfer.metrics,
        )
        .where(_touches_pool(org_id), _after_mark(org_id, old_id))
        .order_by(Transfer.id)
        .execution_options(yield_per=2000)
    ).tuples()
    for transfer_id, at, into_pool, amount, kind, metrics in rows:
        if at >= cutoff:
            break  # ids grow with time: the rest are newer still
        balance += amount if into_pool else -amount
        if not -MAX_TOTAL <= balance <= MAX_TOTAL:
            return  # books broken past any column's range (the audit names them): keep live
        day = days.setdefault(day_of(at), {"last_at": at, "began": None, "ended": None})
        day["last_at"], day["balance"] = max(day["last_at"], at), balance
        if kind == TransferKind.METERING:
            began, ended = _burn(at, metrics)
            day["began"] = min(began, day["began"] or began)
            day["ended"] = max(ended, day["ended"] or ended)
        last_id = transfer_id
    rows.close()
    if last_id == old_id:
        return  # nothing old enough since the last roll-up
    if mark is None:
        insert = postgresql.insert if uow.dialect == "postgresql" else sqlite.insert
        session.execute(
            insert(PoolRollup)
            .values(org_id=org_id, through_id="", through_at=NEVER, balance=0)
            .on_conflict_do_nothing()
        )
    claimed = session.execute(
        update(PoolRollup)
        .where(PoolRollup.org_id == org_id, PoolRollup.through_id == old_id)
        .values(through_id=last_id, through_at=cutoff, balance=balance)
        .execution_options(synchronize_session=False)
    )
    if rowcount(claimed) != 1:
        return  # another reader rolled these transfers up first
    _store_days(uow, org_id, days.items())


def _store_days(uow: UnitOfWork, org_id: str, days: Iterable[tuple[datetime, Any]]) -> None:
    for day, figures in days:
        # A transfer committed out of id order may land on a day already rolled up: merged.
        row = uow.session.get(PoolDay, (org_id, day))
        if row is None:
            row = PoolDay(org_id=org_id, day=day, last_at=figures["last_at"])
            uow.session.add(row)
        row.last_at = max(row.last_at, figures["last_at"])
        row.balance = figures["balance"]
        began = [at for at in (row.burn_began, figures["began"]) if at is not None]
        ended = [at for at in (row.burn_ended, figures["ended"]) if at is not None]
        row.burn_began = min(began) if began else None
        row.burn_ended = max(ended) if ended else None
    uow.session.flush()


def pool_moves(uow: UnitOfWork, org_id: str, *, limit: int) -> tuple[list[PoolPoint], int]:
    """Inside an open unit of work: the pool's last `limit` moves, oldest first (a day each
    for the days rolled up, a batch each after), and its posted balance after the last."""
    session = uow.session
    mark = session.get(PoolRollup, org_id)
    through_id, through_at = (mark.through_id, mark.through_at) if mark else ("", NEVER)
    balance = mark.balance if mark else 0
    # Days a roll-up committed after the mark was read are left for the next read.
    stored = session.scalars(
        select(PoolDay)
        .where(PoolDay.org_id == org_id, PoolDay.day <= through_at)
        .order_by(PoolDay.day.desc())
        .limit(limit)
    ).all()
    moves = [
        PoolPoint(day.last_at, day.balance, day.burn_began, day.burn_ended)
        for day in reversed(stored)
    ]
    is_metering = Transfer.kind == TransferKind.METERING
    tail = _touches_pool(org_id) & _after_mark(org_id, through_id)
    # A batch's movements of the pool may add up past 2^63 on the way: summed exactly.
    delta = exact_sum(
        case((Transfer.credit_account_id == _POOL, Transfer.amount), else_=-Transfer.amount)
    )
    batches = session.execute(
        select(func.min(Transfer.created_at), *delta, is_metering, Transfer.batch_id)
        .where(tail)
        .group_by(Transfer.batch_id, is_metering)
        .order_by(func.min(Transfer.id))
    ).tuples()
    burns = dict(
        session.execute(select(Transfer.batch_id, Transfer.metrics).where(tail, is_metering))
        .tuples()
        .all()
    )
    for at, high, low, burned, batch_id in batches:
        balance += combine(high, low)
        if burned:
            moves.append(PoolPoint(at, balance, *_burn(at, burns.get(batch_id))))
        else:
            moves.append(PoolPoint(at, balance))
    return moves[-limit:], balance
