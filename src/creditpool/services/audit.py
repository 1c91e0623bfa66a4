"""The audit: every invariant of the ledger, checked across the whole database.

1. In every org the balances of all accounts sum to zero.
2. Every account's balance equals the sum of its transfers (in minus out).
3. No pool or wallet is negative; no wallet holds more than its balance.
4. Every wallet's held credits equal its pending holds.
5. Every member's running totals (allocated, auto-allocated, used, usage metrics) equal what its
   transfers say.
6. Every org's seat counts equal its active members by seat.
7. Every transfer stays inside one org: its accounts exist there.
8. Every transfer between a parent's pool and a child's has its twin in the other ledger, of
   the same batch id and amount: `to_child` in the parent and `from_parent` in the child, and
   `to_parent` in the child and `from_child` in the parent, each way.
9. A parent's `children` balance is minus the sum of its children's `parent` balances.
10. The lots agree with the balances, the transfers and the holds (services/lot_audit.py).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import InstrumentedAttribute

from creditpool.domain.model import AccountKind, HoldStatus, MemberStatus, TransferKind
from creditpool.services.lot_audit import audit_lots
from creditpool.services.totals import combine, exact_sum
from creditpool.storage.schema import Account, Hold, Member, Org, Transfer, UsageTotal
from creditpool.storage.unit_of_work import UnitOfWork


@dataclass
class AuditReport:
    """What was checked, and each breach found (empty when the books are sound)."""

    checked: list[str] = field(default_factory=list)
    breaches: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """True when no invariant is broken."""
        return not self.breaches


def audit(uow: UnitOfWork, org_id: str | None = None) -> AuditReport:
    """Check every ledger invariant, for one org or for all of them."""
    report = AuditReport()
    with uow:
        session = uow.session

        def scoped(query: Select[Any], column: InstrumentedAttribute[str]) -> Select[Any]:
            return query if org_id is None else query.where(column == org_id)

        accounts = {
            (org, account): (kind, balance, held)
            for org, account, kind, balance, held in session.execute(
                scoped(
                    select(Account.org_id, Account.id, Account.kind, Account.balance, Account.held),
                    Account.org_id,
                )
            ).tuples()
        }
        orgs = {org for org, _ in accounts}
        report.checked.append(f"{len(orgs)} orgs, {len(accounts)} accounts")

        sums: dict[str, int] = defaultdict(int)
        for (org, _), (_, balance, _) in accounts.items():
            sums[org] += balance
        for org, total in sorted(sums.items()):
            if total != 0:
                report.breaches.append(f"org {org}: balances sum to {total}, not 0")
        report.checked.append("balances sum to zero in every org")

        flows: dict[tuple[str, str], int] = defaultdict(int)
        transfers = 0
        # Sums of transfers grow without bound (allot, revoke, allot again): summed exactly.
        for org, debit, credit, high, low, count in session.execute(
            scoped(
                select(
                    Transfer.org_id,
                    Transfer.debit_account_id,
                    Transfer.credit_account_id,
                    *exact_sum(Transfer.amount),
                    func.count(),
                ).group_by(Transfer.org_id, Transfer.debit_account_id, Transfer.credit_account_id),
                Transfer.org_id,
            )
        ).tuples():
            amount = combine(high, low)
            flows[(org, debit)] -= amount
            flows[(org, credit)] += amount
            transfers += int(count)
            for account in (debit, credit):
                if (org, account) not in accounts:
                    report.breaches.append(f"org {org}: a transfer names unknown account {account}")
        for key, (kind, balance, held) in sorted(accounts.items()):
            if flows.get(key, 0) != balance:
                report.breaches.append(
                    f"org {key[0]}: account {key[1]} has balance {balance} "
                    f"but its transfers sum to {flows.get(key, 0)}"
                )
            if kind in (AccountKind.POOL, AccountKind.WALLET) and balance < 0:
                report.breaches.append(f"org {key[0]}: {kind} {key[1]} is negative ({balance})")
            if held < 0 or (held and held > balance):
                report.breaches.append(
                    f"org {key[0]}: {key[1]} holds {held} of a balance of {balance}"
                )
        report.checked.append(f"{transfers} transfers: every balance equals its transfers")
        report.checked.append("no pool or wallet negative, no wallet over-held")

        pending: dict[tuple[str, str], int] = defaultdict(int)
        for org, member_id, high, low in session.execute(
            scoped(
                select(Hold.org_id, Hold.member_id, *exact_sum(Hold.amount))
                .where(Hold.status == HoldStatus.PENDING)
                .group_by(Hold.org_id, Hold.member_id),
                Hold.org_id,
            )
        ).tuples():
            pending[(org, f"wallet:{member_id}")] = combine(high, low)
        for key, (kind, _, held) in sorted(accounts.items()):
            if kind == AccountKind.WALLET and held != pending.get(key, 0):
                report.breaches.append(
                    f"org {key[0]}: {key[1]} holds {held} but its pending holds sum to "
                    f"{pending.get(key, 0)}"
                )
        report.checked.append("held credits equal pending holds")

        _audit_member_totals(uow, org_id, report)
        _audit_seats(uow, org_id, report)
        _audit_family_twins(uow, org_id, report)
        _audit_family_balances(uow, org_id, report)
        audit_lots(session, org_id, accounts, report)
    return report


# Each family transfer's twin in the other ledger, and whether it sits on the parent's side.
_TWINS = {
    TransferKind.TO_CHILD: (TransferKind.FROM_PARENT, True),
    TransferKind.FROM_PARENT: (TransferKind.TO_CHILD, False),
    TransferKind.TO_PARENT: (TransferKind.FROM_CHILD, False),
    TransferKind.FROM_CHILD: (TransferKind.TO_PARENT, True),
}


def _family_of(uow: UnitOfWork, org_id: str | None) -> tuple[dict[str, str], set[str] | None]:
    """Return each child's parent, and the orgs an audit of `org_id` reads (None: all): the
    org, its parent and its children."""
    parents = {
        child: parent
        for child, parent in uow.session.execute(
            select(Org.id, Org.parent_id).where(Org.parent_id.is_not(None))
        ).tuples()
        if parent is not None
    }
    if org_id is None:
        return parents, None
    near = {org_id, *(child for child, parent in parents.items() if parent == org_id)}
    if org_id in parents:
        near.add(parents[org_id])
    return parents, near


def _audit_family_twins(uow: UnitOfWork, org_id: str | None, report: AuditReport) -> None:
    parents, near = _family_of(uow, org_id)
    query = select(
        Transfer.org_id, Transfer.batch_id, Transfer.kind, Transfer.amount, Transfer.reference
    ).where(Transfer.kind.in_(list(_TWINS)))
    if near is not None:
        query = query.where(Transfer.org_id.in_(sorted(near)))
    rows = list(uow.session.execute(query).tuples())
    by_batch: dict[str, list[tuple[str, str, str, int, str | None]]] = defaultdict(list)
    for row in rows:
        by_batch[row[1]].append(row)
    checked = 0
    for org, batch, kind, amount, reference in rows:
        # A scoped audit reads its parent's and children's ledgers whole: a transfer there
        # with a sibling is not this org's to check.
        if org_id is not None and org_id not in (org, reference):
            continue
        checked += 1
        twin_kind, parent_side = _TWINS[TransferKind(kind)]
        twins = [
            (other, twin_amount)
            for other, _, other_kind, twin_amount, _ in by_batch[batch]
            if other_kind == twin_kind
            and (parents.get(other) == org if parent_side else parents.get(org) == other)
        ]
        where = "a child" if parent_side else "its parent"
        if not twins:
            report.breaches.append(
                f"org {org}: {kind} of batch {batch} ({amount}) has no {twin_kind} twin in {where}"
            )
        elif len(twins) > 1 or twins[0][1] != amount:
            report.breaches.append(
                f"org {org}: {kind} of batch {batch} ({amount}) has {twin_kind} twins in {where} "
                f"moving {[twin_amount for _, twin_amount in twins]}"
            )
    report.checked.append(f"{checked} family transfers: each has its twin in the other ledger")


def _audit_family_balances(uow: UnitOfWork, org_id: str | None, report: AuditReport) -> None:
    parents, near = _family_of(uow, org_id)
    owed: dict[str, int] = defaultdict(int)  # by parent: its children's `parent` balances
    given: dict[str, int] = {}  # by parent: its `children` balance
    query = select(Account.org_id, Account.kind, Account.balance).where(
        Account.kind.in_([AccountKind.CHILDREN, AccountKind.PARENT])
    )
    if near is not None:
        # The parents near the org, and all their children.
        read = near | {child for child, parent in parents.items() if parent in near}
        query = query.where(Account.org_id.in_(sorted(read)))
    for org, kind, balance in uow.session.execute(query).tuples():
        if kind == AccountKind.CHILDREN:
            given[org] = balance
        elif org in parents:
            owed[parents[org]] += balance
    for parent in sorted(set(given) | set(owed)):
        if near is not None and parent not in near:
            continue
        if given.get(parent, 0) != -owed.get(parent, 0):
            report.breaches.append(
                f"org {parent}: its children account holds {given.get(parent, 0)} but its "
                f"children's parent accounts sum to {owed.get(parent, 0)}"
            )
    report.checked.append("each parent's children account mirrors its children's parent accounts")


def _audit_member_totals(uow: UnitOfWork, org_id: str | None, report: AuditReport) -> None:
    session = uow.session
    expected: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    query = select(Transfer.org_id, Transfer.member_id, Transfer.kind, *exact_sum(Transfer.amount))
    query = query.where(Transfer.member_id.is_not(None)).group_by(
        Transfer.org_id, Transfer.member_id, Transfer.kind
    )
    if org_id is not None:
        query = query.where(Transfer.org_id == org_id)
    for org, member_id, kind, high, low in session.execute(query).tuples():
        totals = expected[(org, member_id or "")]
        amount = combine(high, low)
        if kind in (TransferKind.ALLOCATION, TransferKind.AUTO_ALLOCATION):
            totals["allocated"] += amount
        if kind == TransferKind.AUTO_ALLOCATION:
            totals["auto_allocated"] += amount
        if kind == TransferKind.USAGE:
            totals["used"] += amount
    metrics: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    usage = select(Transfer.org_id, Transfer.member_id, Transfer.metrics).where(
        Transfer.kind == TransferKind.USAGE, Transfer.metrics.is_not(None)
    )
    if org_id is not None:
        usage = usage.where(Transfer.org_id == org_id)
    for org, member_id, values in session.execute(usage).tuples():
        for name, value in (values or {}).items():
            metrics[(org, member_id or "")][name] += int(value)
    members = select(Member)
    stored = select(UsageTotal)
    if org_id is not None:
        members = members.where(Member.org_id == org_id)
        stored = stored.where(UsageTotal.org_id == org_id)
    count = 0
    for member in session.scalars(members):
        count += 1
        totals = expected.get((member.org_id, member.id), {})
        for name, value in (
            ("allocated", member.allocated_total),
            ("auto_allocated", member.auto_allocated_total),
            ("used", member.used_total),
        ):
            if totals.get(name, 0) != value:
                report.breaches.append(
                    f"org {member.org_id}: member {member.id} shows {name} {value} "
                    f"but its transfers say {totals.get(name, 0)}"
                )
    recorded: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for total in session.scalars(stored):
        recorded[(total.org_id, total.member_id)][total.metric] = total.total
    for key in sorted(set(recorded) | set(metrics)):
        if recorded.get(key, {}) != dict(metrics.get(key, {})):
            report.breaches.append(
                f"org {key[0]}: member {key[1]} usage totals {recorded.get(key, {})} "
                f"differ from its transfers {dict(metrics.get(key, {}))}"
            )
    report.checked.append(f"{count} members: running totals equal their transfers")


def _audit_seats(uow: UnitOfWork, org_id: str | None, report: AuditReport) -> None:
    session = uow.session
    counts: dict[tuple[str, str], int] = defaultdict(int)
    query = (
        select(Member.org_id, Member.seat, func.count())
        .where(Member.status == MemberStatus.ACTIVE)
        .group_by(Member.org_id, Member.seat)
    )
    orgs = select(Org)
    if org_id is not None:
        query = query.where(Member.org_id == org_id)
        orgs = orgs.where(Org.id == org_id)
    for org, seat, count in session.execute(query).tuples():
        counts[(org, seat)] = int(count)
    for row in session.scalars(orgs):
        for seat, stored in (
            ("licensed", row.licensed_seats),
            ("unlicensed", row.unlicensed_seats),
            ("external", row.external_seats),
        ):
            if counts.get((row.id, seat), 0) != stored:
                report.breaches.append(
                    f"org {row.id}: counts {stored} {seat} seats, "
                    f"but {counts.get((row.id, seat), 0)} active members hold one"
                )
    report.checked.append("seat counts equal active members by seat")
