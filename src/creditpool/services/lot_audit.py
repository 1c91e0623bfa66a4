"""The audit of lots: what each pool and wallet holds of each lot, and where each lot went.

1. Every pool's and wallet's balance is the sum of what its lots hold in it
   (`lot_balances.amount`), and its `held` the sum of their `held`; only pools and wallets
   have holdings.
2. Every transfer says its lots, and they sum to its amount, each share positive.
3. Every account's balance is the sum of its transfers' lot shares (in minus out): per lot,
   that sum is the lot's holding in a pool or wallet; over all lots, a system account's balance.
4. No lot is spent past its amount: amount = in the pool + in wallets + used + metered + moved
   + expired, each term at least zero, the last four summed from the transfers' shares (usage,
   metering, to_child + to_parent - from_child, expiry) and equal to the lot's counters; and
   its amount is what entered the org in it (its purchase, or its parent's `from_parent`
   transfers naming it).
5. Every pending hold's lots sum to its amount, and per wallet and lot they are the holding's
   `held`.

Shares are summed in the database, grouped by account and lot (one query per engine: the JSON
functions differ), so the audit reads a row per account, lot and kind, never one per transfer,
except for transfers found wrong.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple

from sqlalchemy import TextClause, select, text
from sqlalchemy.orm import Session

from creditpool.domain.model import AccountKind, HoldStatus, TransferKind
from creditpool.services.totals import combine
from creditpool.storage.schema import Lot, LotBalance

if TYPE_CHECKING:
    from creditpool.services.audit import AuditReport

# An account's row as the audit read it: its kind, balance and held credits, by (org, account).
Accounts = dict[tuple[str, str], tuple[str, int, int]]
# A lot's share moved between accounts, by (org, kind, debit, credit, lot).
Flows = dict[tuple[str, str, str, str, str], int]

WALLET_PREFIX = "wallet:"

# The elements of a JSON `lots` column, as rows `e` with the lot id and the amount; anything
# but an array (a null, a broken value) yields no rows and is reported by check 2.
_ELEMENTS = {
    "sqlite": (
        "json_each(CASE WHEN json_type({column}) = 'array' THEN {column} END) AS e",
        "json_extract(e.value, '$.lot_id')",
        "json_extract(e.value, '$.amount')",
    ),
    "postgresql": (
        "json_array_elements(CASE WHEN json_typeof({column}) = 'array' THEN {column} END)"
        " AS e(value)",
        "e.value ->> 'lot_id'",
        "CAST(e.value ->> 'amount' AS BIGINT)",
    ),
}

# How each kind of transfer moves a lot's figures: entered the org, used, metered, moved,
# expired (the other kinds move it between the pool and wallets).
_FIGURES: dict[str, tuple[str, int]] = {
    TransferKind.PURCHASE: ("entered", 1),
    TransferKind.FROM_PARENT: ("entered", 1),
    TransferKind.USAGE: ("used", 1),
    TransferKind.METERING: ("metered", 1),
    TransferKind.TO_CHILD: ("moved", 1),
    TransferKind.TO_PARENT: ("moved", 1),
    TransferKind.FROM_CHILD: ("moved", -1),
    TransferKind.EXPIRY: ("expired", 1),
}


class _Sql(NamedTuple):
    elements: str
    lot_id: str
    amount: str


# The audit's statements; {elements}, {lot_id} and {amount} are the engine's fragments above,
# {scope} limits them to one org. A share is one transfer's or hold's, so a sum of one row's
# shares is summed plainly; the sums over many transfers, exactly (services/totals.py). A
# row's shares are checked by grouping the row with them, which both engines do in one pass
# (a subquery per row costs PostgreSQL three times as much).
_WRONG_TRANSFERS = (
    "SELECT t.org_id, t.id, t.amount, sum({amount}), min({amount})"
    " FROM transfers t LEFT JOIN {elements} ON 1 = 1 WHERE 1 = 1{scope}"
    " GROUP BY t.org_id, t.id, t.amount"
    " HAVING sum({amount}) IS NULL OR sum({amount}) <> t.amount OR min({amount}) <= 0"
    " ORDER BY t.org_id, t.id"
)
_FLOWS = (
    "SELECT t.org_id, t.kind, t.debit_account_id, t.credit_account_id, {lot_id},"
    " coalesce(sum({amount} >> 32), 0), coalesce(sum({amount} & 4294967295), 0)"
    " FROM transfers t, {elements} WHERE 1 = 1{scope}"
    " GROUP BY t.org_id, t.kind, t.debit_account_id, t.credit_account_id, {lot_id}"
)
_RESERVED = (
    "SELECT h.org_id, h.member_id, {lot_id}, sum({amount}) FROM holds h, {elements}"
    " WHERE h.status = :pending{scope} GROUP BY h.org_id, h.member_id, {lot_id}"
)
_WRONG_HOLDS = (
    "SELECT h.org_id, h.id, h.amount, sum({amount})"
    " FROM holds h LEFT JOIN {elements} ON 1 = 1 WHERE h.status = :pending{scope}"
    " GROUP BY h.org_id, h.id, h.amount"
    " HAVING sum({amount}) IS NULL OR sum({amount}) <> h.amount ORDER BY h.org_id, h.id"
)


def _statement(template: str, sql: _Sql, table: str, org_id: str | None) -> TextClause:
    """One of the statements above for this engine, over `table` ("t" or "h")."""
    return text(
        template.format(
            elements=sql.elements.format(column=f"{table}.lots"),
            lot_id=sql.lot_id,
            amount=sql.amount,
            scope="" if org_id is None else f" AND {table}.org_id = :org",
        )
    )


def audit_lots(
    session: Session, org_id: str | None, accounts: Accounts, report: AuditReport
) -> None:
    """Check the lots' invariants (the module's list), for one org or for all of them."""
    sql = _Sql(*_ELEMENTS[session.get_bind().dialect.name])
    holdings = _holdings(session, org_id)
    _check_holdings(accounts, holdings, report)
    _check_transfer_shares(session, sql, org_id, report)
    flows = _flows(session, sql, org_id)
    _check_accounts_by_lot(accounts, holdings, flows, report)
    _check_lots(session, org_id, holdings, flows, report)
    _check_holds(session, sql, org_id, holdings, report)


def _holdings(session: Session, org_id: str | None) -> dict[tuple[str, str, str], tuple[int, int]]:
    """What each lot holds in each account: (amount, held) by (org, account, lot)."""
    query = select(
        LotBalance.org_id,
        LotBalance.account_id,
        LotBalance.lot_id,
        LotBalance.amount,
        LotBalance.held,
    )
    if org_id is not None:
        query = query.where(LotBalance.org_id == org_id)
    return {
        (org, account, lot): (amount, held)
        for org, account, lot, amount, held in session.execute(query).tuples()
    }


def _holds_credits(kind: str) -> bool:
    return kind in (AccountKind.POOL, AccountKind.WALLET)


def _check_holdings(
    accounts: Accounts,
    holdings: dict[tuple[str, str, str], tuple[int, int]],
    report: AuditReport,
) -> None:
    summed: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for (org, account, _), (amount, held) in holdings.items():
        summed[(org, account)][0] += amount
        summed[(org, account)][1] += held
    for key in sorted(summed):
        kind = accounts.get(key, ("unknown", 0, 0))[0]
        if not _holds_credits(kind):
            report.breaches.append(f"org {key[0]}: {kind} account {key[1]} has lot holdings")
    for key, (kind, balance, held) in sorted(accounts.items()):
        if not _holds_credits(kind):
            continue
        in_lots, held_in_lots = summed.get(key, [0, 0])
        if (in_lots, held_in_lots) != (balance, held):
            report.breaches.append(
                f"org {key[0]}: {key[1]} has balance {balance} and holds {held}, but its lots "
                f"hold {in_lots}, of which {held_in_lots} held"
            )
    report.checked.append(
        f"{len(holdings)} lot holdings: each pool's and wallet's balance and held are its lots'"
    )


def _check_transfer_shares(
    session: Session, sql: _Sql, org_id: str | None, report: AuditReport
) -> None:
    wrong = _statement(_WRONG_TRANSFERS, sql, "t", org_id)
    parameters = {} if org_id is None else {"org": org_id}
    for org, transfer, amount, summed, smallest in session.execute(wrong, parameters).tuples():
        if summed is None:
            report.breaches.append(f"org {org}: transfer {transfer} names no lots")
        elif int(summed) != amount:
            report.breaches.append(
                f"org {org}: transfer {transfer} moves {amount} but its lots sum to {summed}"
            )
        else:
            report.breaches.append(f"org {org}: transfer {transfer} has a share of {smallest}")
    report.checked.append("every transfer's lots sum to its amount")


def _flows(session: Session, sql: _Sql, org_id: str | None) -> Flows:
    """Sum the transfers' lot shares by org, kind, accounts and lot."""
    summed = _statement(_FLOWS, sql, "t", org_id)
    parameters = {} if org_id is None else {"org": org_id}
    return {
        (org, kind, debit, credit, str(lot)): combine(high, low)
        for org, kind, debit, credit, lot, high, low in session.execute(summed, parameters).tuples()
    }


def _by_account(flows: Flows) -> Iterator[tuple[tuple[str, str, str], int]]:
    for (org, _, debit, credit, lot), amount in flows.items():
        yield (org, debit, lot), -amount
        yield (org, credit, lot), amount


def _check_accounts_by_lot(
    accounts: Accounts,
    holdings: dict[tuple[str, str, str], tuple[int, int]],
    flows: Flows,
    report: AuditReport,
) -> None:
    by_lot: dict[tuple[str, str, str], int] = defaultdict(int)
    for key, amount in _by_account(flows):
        by_lot[key] += amount
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for (org, account, _), amount in by_lot.items():
        totals[(org, account)] += amount
    for org, account, lot in sorted(set(by_lot) | set(holdings)):
        kind = accounts.get((org, account), ("unknown", 0, 0))[0]
        if not _holds_credits(kind):
            continue
        traced = by_lot.get((org, account, lot), 0)
        holding = holdings.get((org, account, lot), (0, 0))[0]
        if traced != holding:
            report.breaches.append(
                f"org {org}: lot {lot} holds {holding} in {account} but the transfers' lots "
                f"bring it {traced}"
            )
    for (org, account), (kind, balance, _) in sorted(accounts.items()):
        if totals.get((org, account), 0) != balance:
            report.breaches.append(
                f"org {org}: {kind} account {account} has balance {balance} but the lots of "
                f"its transfers sum to {totals.get((org, account), 0)}"
            )
    report.checked.append("every account's balance equals its transfers' lots, lot by lot")


def _check_lots(
    session: Session,
    org_id: str | None,
    holdings: dict[tuple[str, str, str], tuple[int, int]],
    flows: Flows,
    report: AuditReport,
) -> None:
    figures: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for (org, kind, _, _, lot), amount in flows.items():
        figure = _FIGURES.get(kind)
        if figure is not None:
            figures[(org, lot)][figure[0]] += figure[1] * amount
    for (org, account, lot), (amount, _) in holdings.items():
        where = "in_pool" if account == AccountKind.POOL else "in_wallets"
        figures[(org, lot)][where] += amount
    query = select(Lot.org_id, Lot.id, Lot.amount, Lot.metered, Lot.moved, Lot.expired)
    if org_id is not None:
        query = query.where(Lot.org_id == org_id)
    count = 0
    for org, lot, amount, *counters in session.execute(query).tuples():
        count += 1
        found = figures.pop((org, lot), {})
        stored = dict(zip(("metered", "moved", "expired"), counters, strict=True))
        _check_lot(org, lot, amount, stored, found, report)
    for org, lot in sorted(figures):
        report.breaches.append(f"org {org}: transfers or holdings name unknown lot {lot}")
    report.checked.append(f"{count} lots: none spent past its amount, counters as transfers say")


_TERMS = ("in_pool", "in_wallets", "used", "metered", "moved", "expired")


def _check_lot(
    org: str,
    lot: str,
    amount: int,
    counters: dict[str, int],
    found: dict[str, int],
    report: AuditReport,
) -> None:
    for name, value in counters.items():
        if found.get(name, 0) != value:
            report.breaches.append(
                f"org {org}: lot {lot} shows {name} {value} but its transfers say "
                f"{found.get(name, 0)}"
            )
    if found.get("entered", 0) != amount:
        report.breaches.append(
            f"org {org}: lot {lot} has amount {amount} but {found.get('entered', 0)} entered "
            "the org in it"
        )
    terms = {name: found.get(name, 0) for name in _TERMS}
    negative = [name for name, value in terms.items() if value < 0]
    if negative or sum(terms.values()) != amount:
        shown = ", ".join(f"{name} {value}" for name, value in terms.items())
        report.breaches.append(f"org {org}: lot {lot} of amount {amount} is spent as {shown}")


def _check_holds(
    session: Session,
    sql: _Sql,
    org_id: str | None,
    holdings: dict[tuple[str, str, str], tuple[int, int]],
    report: AuditReport,
) -> None:
    parameters: dict[str, str] = {"pending": HoldStatus.PENDING}
    if org_id is not None:
        parameters["org"] = org_id
    summed = _statement(_RESERVED, sql, "h", org_id)
    reserved = {
        (org, WALLET_PREFIX + member, str(lot)): int(amount)
        for org, member, lot, amount in session.execute(summed, parameters).tuples()
    }
    held = {key: value[1] for key, value in holdings.items() if value[1] or key in reserved}
    for org, account, lot in sorted(set(reserved) | set(held)):
        if reserved.get((org, account, lot), 0) != held.get((org, account, lot), 0):
            report.breaches.append(
                f"org {org}: lot {lot} has {held.get((org, account, lot), 0)} held in {account} "
                f"but pending holds keep {reserved.get((org, account, lot), 0)} of it"
            )
    wrong = _statement(_WRONG_HOLDS, sql, "h", org_id)
    for org, hold, amount, lots_sum in session.execute(wrong, parameters).tuples():
        report.breaches.append(
            f"org {org}: pending hold {hold} reserves {amount} but its lots sum to {lots_sum}"
        )
    report.checked.append("pending holds' lots equal their amounts and their lots' held")
