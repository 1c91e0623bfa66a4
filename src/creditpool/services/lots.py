"""Lots: where every credit in a pool or wallet came from, spent in one order everywhere.

A purchase makes a lot; a parent's allotment carries its lots down to lots of the child (one
per parent lot, with the same priority and expiry). `lot_balances` says how much of each lot
each pool and wallet holds, so an account's balance is the sum over its lots.

Every transfer is given its lots here, when its Posting is flushed (or by the charge paths,
which post without one): credits leaving a pool or a wallet are taken from its lots in the
spending order (lowest priority, then soonest expiry, never-expiring last, then oldest),
skipping what holds reserve and what has expired; credits arriving keep their lots. A
revocation therefore returns credits to the lots they came from. The transfer row records
which lots it moved (`lots`), and the lots' counters follow: metered, moved, expired.

Cost. An org with one lot that never expires, which is most orgs, names it in
`orgs.sole_lot_id`: its transfers then read no holdings at all, and a charge touches one more
row, its wallet's holding of the lot. Otherwise the holdings of the accounts a batch takes
from are read in one statement per chunk. Holdings are only changed by adding to them (an
upsert of deltas), under the lock their account's row already holds for the balance change,
so two transactions never decide from holdings the other is changing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, case, select, text, update
from sqlalchemy.orm import Session

from creditpool.domain.model import AccountKind, LotSource, TransferKind
from creditpool.storage.bulk import among
from creditpool.storage.ids import new_id
from creditpool.storage.schema import Lot, LotBalance, Org, table_of

CHUNK = 900
WALLET_PREFIX = "wallet:"
_NEVER = datetime.max.replace(tzinfo=UTC)
_LOTS, _HOLDINGS = table_of(Lot), table_of(LotBalance)

# A lot's share of a transfer, hold or holding: (lot id, micro-credits).
Share = tuple[str, int]


def holds_credits(account_id: str) -> bool:
    """Whether an account's credits are kept by lot: the pool and the wallets."""
    return account_id == AccountKind.POOL or account_id.startswith(WALLET_PREFIX)


@dataclass
class Holding:
    """What one lot holds in one account, with what orders its spending."""

    lot_id: str
    amount: int
    held: int
    priority: int
    expires_at: datetime | None
    created_at: datetime
    parent_lot_id: str | None = None

    def order(self) -> tuple[int, datetime, datetime, str]:
        """The spending order: priority, soonest expiry (never last), oldest, then id."""
        return (self.priority, self.expires_at or _NEVER, self.created_at, self.lot_id)

    def spendable(self, now: datetime) -> int:
        """What can leave: not held, and nothing of a lot that has expired."""
        if self.expires_at is not None and self.expires_at <= now:
            return 0
        return self.amount - self.held


def take(holdings: Iterable[Holding], amount: int, now: datetime) -> list[Share]:
    """Take `amount` from these holdings in the spending order, changing them; the shares
    taken. A shortfall is a bug: the caller checked the account's balance first."""
    shares: list[Share] = []
    left = amount
    for holding in sorted(holdings, key=Holding.order):
        if left == 0:
            break
        part = min(left, holding.spendable(now))
        if part > 0:
            holding.amount -= part
            shares.append((holding.lot_id, part))
            left -= part
    if left:
        raise RuntimeError(f"the lots of an account could not cover {amount} micro-credits")
    return shares


def load_holdings(
    session: Session | Connection, org_id: str, account_ids: Iterable[str]
) -> dict[str, list[Holding]]:
    """Return what each lot holds in these accounts (those with anything), by account."""
    found: dict[str, list[Holding]] = defaultdict(list)
    ids = sorted(set(account_ids))
    for start in range(0, len(ids), CHUNK):
        part = ids[start : start + CHUNK]
        rows = session.execute(
            select(
                _HOLDINGS.c.account_id,
                _HOLDINGS.c.lot_id,
                _HOLDINGS.c.amount,
                _HOLDINGS.c.held,
                _LOTS.c.priority,
                _LOTS.c.expires_at,
                _LOTS.c.created_at,
                _LOTS.c.parent_lot_id,
            )
            .join(
                _LOTS, (_LOTS.c.org_id == _HOLDINGS.c.org_id) & (_LOTS.c.id == _HOLDINGS.c.lot_id)
            )
            .where(
                _HOLDINGS.c.org_id == org_id,
                among(session, _HOLDINGS.c.account_id, part),
                _HOLDINGS.c.amount > 0,
            )
        )
        for account_id, lot_id, amount, held, priority, expires_at, created, parent in rows:
            found[account_id].append(
                Holding(lot_id, amount, held, priority, expires_at, created, parent)
            )
    return found


# Adds to holdings, making the row when there is none. Text, as both engines read it alike.
_ADD = text(
    "INSERT INTO lot_balances (org_id, account_id, lot_id, amount, held) "
    "VALUES (:org, :account, :lot, :amount, :held) "
    "ON CONFLICT (org_id, account_id, lot_id) DO UPDATE SET "
    "amount = lot_balances.amount + excluded.amount, held = lot_balances.held + excluded.held"
)
_ADD_MANY_POSTGRESQL = text(
    "INSERT INTO lot_balances (org_id, account_id, lot_id, amount, held) "
    "SELECT :org, account, lot, amount, held "
    "FROM unnest(CAST(:accounts AS text[]), CAST(:lots AS text[]), CAST(:amounts AS bigint[]),"
    " CAST(:helds AS bigint[])) AS delta(account, lot, amount, held) "
    "ON CONFLICT (org_id, account_id, lot_id) DO UPDATE SET "
    "amount = lot_balances.amount + excluded.amount, held = lot_balances.held + excluded.held"
)
# Changes holdings that exist (any change that takes something away or holds more: the row is
# there, and an INSERT's row would fail its checks before it met the conflict).
_CHANGE = text(
    "UPDATE lot_balances SET amount = amount + :amount, held = held + :held "
    "WHERE org_id = :org AND account_id = :account AND lot_id = :lot"
)
_CHANGE_MANY_POSTGRESQL = text(
    "UPDATE lot_balances SET amount = lot_balances.amount + delta.amount,"
    " held = lot_balances.held + delta.held "
    "FROM unnest(CAST(:accounts AS text[]), CAST(:lots AS text[]), CAST(:amounts AS bigint[]),"
    " CAST(:helds AS bigint[])) AS delta(account, lot, amount, held) "
    "WHERE lot_balances.org_id = :org AND lot_balances.account_id = delta.account"
    " AND lot_balances.lot_id = delta.lot"
)


def add_to_holdings(
    bind: Session | Connection, org_id: str, deltas: dict[tuple[str, str], list[int]]
) -> None:
    """Add (amount, held) deltas to the holdings keyed (account, lot): gains by upsert, the
    rest by update, each one statement on PostgreSQL (arrays) and one executemany on SQLite.
    A holding below zero fails the transaction: the caller's bug, never a client's."""
    changes = [(key, delta) for key, delta in sorted(deltas.items()) if delta[0] or delta[1]]
    connection = bind.connection() if isinstance(bind, Session) else bind
    # An upsert's row must pass the checks as if inserted, even when it meets a conflict.
    gains = [change for change in changes if 0 <= change[1][1] <= change[1][0]]
    losses = [change for change in changes if not 0 <= change[1][1] <= change[1][0]]
    for statement, many, part in (
        (_CHANGE, _CHANGE_MANY_POSTGRESQL, losses),
        (_ADD, _ADD_MANY_POSTGRESQL, gains),
    ):
        if not part:
            continue
        if connection.dialect.name == "postgresql" and len(part) > 1:
            connection.execute(
                many,
                {
                    "org": org_id,
                    "accounts": [str(account) for (account, _), _ in part],
                    "lots": [lot for (_, lot), _ in part],
                    "amounts": [delta[0] for _, delta in part],
                    "helds": [delta[1] for _, delta in part],
                },
            )
            continue
        connection.execute(
            statement,
            [
                {"org": org_id, "account": str(account), "lot": lot, "amount": amount, "held": held}
                for (account, lot), (amount, held) in part
            ],
        )


def shares_json(shares: Sequence[Share]) -> list[dict[str, Any]]:
    """The `lots` of a transfer or hold as stored and shown."""
    return [{"lot_id": lot_id, "amount": amount} for lot_id, amount in shares]


def shares_of(stored: Sequence[dict[str, Any]] | None) -> list[Share]:
    """The shares of a stored `lots` list."""
    return [(share["lot_id"], int(share["amount"])) for share in stored or ()]


def sole_lot(session: Session | Connection, org_id: str) -> str | None:
    """Return the org's one never-expiring lot, if it has just that one."""
    return session.execute(select(Org.sole_lot_id).where(Org.id == org_id)).scalar_one()


# How each kind of transfer moves a lot's counters, beyond its holdings.
_COUNTERS: dict[str, tuple[str, int]] = {
    TransferKind.METERING: ("metered", 1),
    TransferKind.EXPIRY: ("expired", 1),
    TransferKind.TO_CHILD: ("moved", 1),
    TransferKind.FROM_CHILD: ("moved", -1),
    TransferKind.TO_PARENT: ("moved", 1),
    TransferKind.FROM_PARENT: ("amount", 1),
}


def trace(session: Session, org_id: str, rows: Sequence[dict[str, Any]], now: datetime) -> None:
    """Give each transfer row its lots (`row["lots"]`) and move them in the holdings and the
    lots' counters. Rows come in the order they were recorded, their balances already moved.

    A row may say its lots itself (`_lots`, e.g. credits coming down from a parent's lots),
    ask for a new lot (`_new_lot`: a purchase), release holds' shares (`_release`: a
    capture) or choose its lots as of an earlier instant (`_as_of`: a burn posted up to an
    expiry); these private keys are removed.
    """
    sole = sole_lot(session, org_id)
    takers = {
        row["debit_account_id"]
        for row in rows
        if holds_credits(row["debit_account_id"]) and "_lots" not in row
    }
    holdings: dict[str, list[Holding]] = {}
    if sole is None and takers:
        found = load_holdings(session, org_id, takers)
        holdings = {account: found.get(account, []) for account in takers}
    deltas: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    counters: dict[tuple[str, str], int] = defaultdict(int)
    traces: dict[tuple[Share, ...], list[dict[str, Any]]] = {}
    for row in rows:
        debit, credit, amount = row["debit_account_id"], row["credit_account_id"], row["amount"]
        as_of = row.pop("_as_of", now)
        for lot_id, released in row.pop("_release", ()):
            deltas[(debit, lot_id)][1] -= released
            for holding in holdings.get(debit, ()):
                if holding.lot_id == lot_id:
                    holding.held -= released
        shares: list[Share]
        if "_new_lot" in row:
            terms = row.pop("_new_lot")
            lot_id = open_lot(session, org_id, amount, now, **terms)
            sole = sole_lot(session, org_id)
            shares = [(lot_id, amount)]
        elif "_lots" in row:
            shares = list(row.pop("_lots"))
            _spend_named(holdings.get(debit, ()), shares)
        elif sole is not None:
            shares = [(sole, amount)]
        else:
            shares = take(holdings.get(debit, ()), amount, as_of)
        for lot_id, part in shares:
            if holds_credits(debit):
                deltas[(debit, lot_id)][0] -= part
            if holds_credits(credit):
                deltas[(credit, lot_id)][0] += part
                _receive(session, org_id, holdings, credit, lot_id, part)
            counter = _COUNTERS.get(row["kind"])
            if counter is not None:
                counters[(lot_id, counter[0])] += counter[1] * part
        # Rows that moved the same shares (an allotment to 100,000 members) share one list:
        # nothing changes a transfer's `lots` once traced.
        key = tuple(shares)
        if key not in traces:
            traces[key] = shares_json(shares)
        row["lots"] = traces[key]
    add_to_holdings(session, org_id, deltas)
    for (lot_id, column), change in sorted(counters.items()):
        column_of = _LOTS.c[column]
        session.execute(
            update(_LOTS)
            .where(_LOTS.c.org_id == org_id, _LOTS.c.id == lot_id)
            .values({column: column_of + change})
        )


def _spend_named(holdings: Iterable[Holding], shares: Sequence[Share]) -> None:
    """Mirror shares named by the caller in loaded holdings, for the rows after."""
    by_lot = {holding.lot_id: holding for holding in holdings}
    for lot_id, part in shares:
        if lot_id in by_lot:
            by_lot[lot_id].amount -= part


def _receive(
    session: Session,
    org_id: str,
    holdings: dict[str, list[Holding]],
    account: str,
    lot_id: str,
    part: int,
) -> None:
    """Mirror credits arriving in an account whose holdings were loaded (a later row of the
    same flush may take them out again)."""
    if account not in holdings:
        return
    for holding in holdings[account]:
        if holding.lot_id == lot_id:
            holding.amount += part
            return
    lot = session.execute(
        select(
            _LOTS.c.priority, _LOTS.c.expires_at, _LOTS.c.created_at, _LOTS.c.parent_lot_id
        ).where(_LOTS.c.org_id == org_id, _LOTS.c.id == lot_id)
    ).one()
    holdings[account].append(Holding(lot_id, part, 0, *lot))


def open_lot(
    session: Session,
    org_id: str,
    amount: int,
    now: datetime,
    *,
    priority: int,
    expires_at: datetime | None,
    source: LotSource = LotSource.PURCHASE,
    parent_lot_id: str | None = None,
) -> str:
    """Make a lot of the org and keep the org's sole lot and next expiry true; its id."""
    lot_id = new_id("lot")
    session.execute(
        _LOTS.insert().values(
            org_id=org_id,
            id=lot_id,
            source=str(source),
            parent_lot_id=parent_lot_id,
            amount=amount,
            priority=priority,
            expires_at=expires_at,
            created_at=now,
            metered=0,
            moved=0,
            expired=0,
        )
    )
    orgs = table_of(Org)
    values: dict[str, Any] = {"sole_lot_id": _sole(session, org_id)}
    if expires_at is not None:
        values["next_expiry_at"] = _sooner(orgs.c.next_expiry_at, expires_at)
    session.execute(update(orgs).where(orgs.c.id == org_id).values(values))
    _forget_org(session, org_id, *values)
    return lot_id


def _sooner(column: Any, instant: datetime) -> Any:
    """SQL for the sooner of a nullable instant column and `instant`."""
    given = bindparam("sooner", instant, type_=column.type)
    return case((column.is_(None), given), (column > given, given), else_=column)


def _forget_org(session: Session, org_id: str, *names: str) -> None:
    """Make a loaded Org object read these columns again (they were set by Core)."""
    org = session.identity_map.get((Org, (org_id,), None))
    if org is not None:
        session.expire(org, list(names))


def carry_down(
    session: Session, parent_id: str, child_id: str, parent_shares: Sequence[Share], now: datetime
) -> list[Share]:
    """Return a parent's shares as the child's lots, making the child's lot for each parent
    lot it has not received before (same priority and expiry, amount 0: the `from_parent`
    transfer adds to it)."""
    parent_ids = [lot_id for lot_id, _ in parent_shares]
    known = dict(
        session.execute(
            select(_LOTS.c.parent_lot_id, _LOTS.c.id).where(
                _LOTS.c.org_id == child_id, _LOTS.c.parent_lot_id.in_(parent_ids)
            )
        )
        .tuples()
        .all()
    )
    missing = [lot_id for lot_id in parent_ids if lot_id not in known]
    if missing:
        terms = session.execute(
            select(_LOTS.c.id, _LOTS.c.priority, _LOTS.c.expires_at).where(
                _LOTS.c.org_id == parent_id, _LOTS.c.id.in_(missing)
            )
        ).all()
        for parent_lot, priority, expires_at in terms:
            known[parent_lot] = open_lot(
                session,
                child_id,
                0,
                now,
                priority=priority,
                expires_at=expires_at,
                source=LotSource.PARENT,
                parent_lot_id=parent_lot,
            )
    return [(known[lot_id], part) for lot_id, part in parent_shares]


def returnable(session: Session, child_id: str, now: datetime) -> list[Holding]:
    """Return the lots in a child's pool that came from its parent: only those go back up
    (credits the child bought itself stay with it)."""
    return [
        holding
        for holding in load_holdings(session, child_id, [AccountKind.POOL]).get(
            AccountKind.POOL, []
        )
        if holding.parent_lot_id is not None and holding.spendable(now) > 0
    ]


def carry_up(session: Session, child_id: str, child_shares: Sequence[Share]) -> list[Share]:
    """Return a child's shares (of lots that came from its parent) as the parent's lots."""
    parents = dict(
        session.execute(
            select(_LOTS.c.id, _LOTS.c.parent_lot_id).where(
                _LOTS.c.org_id == child_id, _LOTS.c.id.in_([lot for lot, _ in child_shares])
            )
        )
        .tuples()
        .all()
    )
    return [(str(parents[lot_id]), part) for lot_id, part in child_shares]


_DEBIT_SOLE = (
    update(_HOLDINGS)
    .where(
        _HOLDINGS.c.org_id == bindparam("org"),
        _HOLDINGS.c.account_id == bindparam("account"),
        _HOLDINGS.c.lot_id == bindparam("lot"),
        _HOLDINGS.c.amount - _HOLDINGS.c.held >= bindparam("amount"),
    )
    .values(amount=_HOLDINGS.c.amount - bindparam("amount"))
)


def charge(
    connection: Connection,
    org_id: str,
    wallet_id: str,
    amount: int,
    sole: str | None,
    now: datetime,
) -> tuple[list[Share], list[Holding] | None]:
    """Take a charge's `amount` from the lots of a wallet already debited by it; the shares,
    and the wallet's holdings as the charge leaves them when they were read (None when not).

    With the org's sole lot named (read with the org), that is one conditional statement on
    one row. It cannot fail unless a second lot reached the wallet since the org was read;
    then, as in an org of many lots, the wallet's holdings are read (its row is locked by the
    debit) and taken in the spending order.
    """
    if sole is not None:
        arguments = {"org": org_id, "account": wallet_id, "lot": sole, "amount": amount}
        if connection.execute(_DEBIT_SOLE, arguments).rowcount == 1:
            return [(sole, amount)], None
    holdings = load_holdings(connection, org_id, [wallet_id]).get(wallet_id, [])
    shares = take(holdings, amount, now)
    add_to_holdings(connection, org_id, {(wallet_id, lot): [-part, 0] for lot, part in shares})
    return shares, holdings


def hold(session: Session, org_id: str, wallet_id: str, amount: int, now: datetime) -> list[Share]:
    """Reserve `amount` of a wallet's lots, in the spending order, for a hold whose credits
    the wallet's row already reserves; the shares, for the hold to keep."""
    sole = sole_lot(session, org_id)
    if sole is not None:
        shares = [(sole, amount)]
    else:
        holdings = load_holdings(session, org_id, [wallet_id]).get(wallet_id, [])
        shares = take(holdings, amount, now)
    add_to_holdings(session, org_id, {(wallet_id, lot): [0, part] for lot, part in shares})
    return shares


def release(session: Session, org_id: str, wallet_id: str, shares: Sequence[Share]) -> None:
    """Let go of a hold's shares of a wallet's lots: they can be spent again (or, of a lot
    that has expired meanwhile, lapse: services/expiry.py)."""
    deltas: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for lot_id, part in shares:
        deltas[(wallet_id, lot_id)][1] -= part
    add_to_holdings(session, org_id, deltas)


def split(shares: Sequence[Share], amount: int) -> tuple[list[Share], list[Share]]:
    """Split a hold's shares, kept in spending order, into the first `amount` and the rest."""
    first: list[Share] = []
    rest: list[Share] = []
    left = amount
    for lot_id, part in shares:
        used = min(left, part)
        left -= used
        if used:
            first.append((lot_id, used))
        if part - used:
            rest.append((lot_id, part - used))
    return first, rest


def refresh_sole(session: Session, org_id: str) -> None:
    """Name the org's sole lot again once expiries leave it one never-expiring lot (the org's
    row locked: it is written)."""
    orgs = table_of(Org)
    sole = _sole(session, org_id)
    session.execute(update(orgs).where(orgs.c.id == org_id).values(sole_lot_id=sole))
    _forget_org(session, org_id, "sole_lot_id")


def _sole(session: Session, org_id: str) -> str | None:
    """The org's sole lot: its one lot not yet expired, if that never expires and no other
    lot holds anything anywhere (a hold may keep an expired lot's credits a while)."""
    live = session.execute(
        select(_LOTS.c.id, _LOTS.c.expires_at)
        .where(_LOTS.c.org_id == org_id, _LOTS.c.expired_at.is_(None))
        .limit(2)
    ).all()
    if len(live) != 1 or live[0].expires_at is not None:
        return None
    elsewhere = session.execute(
        select(_HOLDINGS.c.lot_id)
        .where(
            _HOLDINGS.c.org_id == org_id,
            _HOLDINGS.c.lot_id != live[0].id,
            _HOLDINGS.c.amount > 0,
        )
        .limit(1)
    ).first()
    return None if elsewhere is not None else str(live[0].id)
