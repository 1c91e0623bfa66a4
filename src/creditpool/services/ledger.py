"""The ledger: double-entry, append-only, in the spirit of TigerBeetle.

Invariants, enforced here and by the schema, checked by `creditpool audit`:

1. Every transfer moves a positive amount from one account to another of the same org; it is
   inserted once and never updated or deleted. A correction is a new transfer.
2. An account's balance is credits in minus credits out, so in every org the balances sum to
   zero and each equals the sum of its transfers.
3. A pool or wallet never goes below zero, and a wallet's open holds never exceed its balance.
4. No balance or running total passes ±(2^63 - 1): a change that would is refused with
   LimitExceeded and nothing moves (see totals.py).

`Posting` is the only code that changes an account's balance or held amount. Debits from pools
and wallets, and holds, are single conditional statements (`balance - held >= :n`), never
read-then-write, so two racing requests cannot both spend the same credit; the few changes that
read first (emptying a wallet, taking all it can spend) do so under the wallet's row lock.
Batch operations touch the pool once and all the wallets in one statement.

Lock order, to keep PostgreSQL free of deadlocks: the org row (taken by anything that touches
the pool, the rate or membership), then holds, then the pool and the wallets (whose lots'
holdings, services/lots.py, change only under their account's lock), then member rows, and
last the usage account, which every charge of the org credits: it is touched as the last
statement before the commit, so its lock is held as briefly as possible. The `expired` account
is credited after the accounts an expiry takes from, and only ever with the wallet of the
member whose rows are locked, if any, so it closes no cycle. Where two orgs of a family are
locked (a move between a parent's pool and a child's, a pause flowing down), the parent's row
comes before the child's, and each org's rows then in the order above.

Explicit row locks are FOR NO KEY UPDATE, never FOR UPDATE: inserting a transfer takes KEY
SHARE locks on the rows its foreign keys name (the org, the accounts, the member), and FOR
UPDATE would make those inserts wait on, and deadlock with, a concurrent batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Connection,
    Row,
    Table,
    Update,
    bindparam,
    case,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from creditpool.domain.model import SYSTEM_ACCOUNTS, AccountKind, TransferKind
from creditpool.metrics import note_transfers
from creditpool.services import lots as lots_of
from creditpool.services.totals import MAX_TOTAL, limit_exceeded, within_limit
from creditpool.storage.bulk import among, insert_rows
from creditpool.storage.ids import new_id
from creditpool.storage.schema import Account, LotBalance, Member, Transfer, table_of

# Enough ids per statement for any engine's limit on bound parameters.
CHUNK = 900
_TRANSFERS = table_of(Transfer)


def bulk_update(model: type[Any]) -> Update:
    """Return an UPDATE of `model` that leaves loaded objects alone.

    SQLAlchemy's default re-evaluates every UPDATE against each object in the session, which
    costs seconds once a batch has loaded 10,000 members. Callers that need fresh objects
    refresh them, or mirror the change with `mirror_totals`.
    """
    return update(model).execution_options(synchronize_session=False)


def add_to_member_totals(
    session: Session,
    org_id: str,
    members: Sequence[Member],
    *,
    allocated: int = 0,
    auto_allocated: int = 0,
    auto_period: int = 0,
) -> None:
    """Add to members' running totals in one statement per chunk, and to the loaded objects
    (`auto_period`: to what they received automatically this period, services/periods.py).

    The totals of allotment only change under the org's lock, so the loaded values plus the
    increment are exactly what the rows now hold.
    """
    ids = [member.id for member in members]
    changed = 0
    for part in chunks(ids):
        changed += rowcount(
            session.execute(
                bulk_update(Member)
                .where(
                    Member.org_id == org_id,
                    among(session, Member.id, part),
                    within_limit(Member.allocated_total, allocated),
                    within_limit(Member.auto_allocated_total, auto_allocated),
                )
                .values(
                    allocated_total=Member.allocated_total + allocated,
                    auto_allocated_total=Member.auto_allocated_total + auto_allocated,
                    auto_period_allocated=Member.auto_period_allocated + auto_period,
                )
            )
        )
    if changed != len(ids):
        # The caller's transaction rolls back whole: no member's total moved.
        raise limit_exceeded("a member's total of credits allotted")
    for member in members:
        set_committed_value(member, "allocated_total", member.allocated_total + allocated)
        set_committed_value(
            member, "auto_allocated_total", member.auto_allocated_total + auto_allocated
        )
        set_committed_value(
            member, "auto_period_allocated", member.auto_period_allocated + auto_period
        )


WALLET_PREFIX = "wallet:"


def wallet_account(member_id: str) -> str:
    """Return the account id of a member's wallet."""
    return f"{WALLET_PREFIX}{member_id}"


def chunks(items: Sequence[str], size: int = CHUNK) -> Iterator[Sequence[str]]:
    """Yield slices of at most `size` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def open_accounts(session: Session, org_id: str) -> None:
    """Create an org's pool and system accounts, all at zero."""
    kinds = (AccountKind.POOL, *SYSTEM_ACCOUNTS)
    session.execute(
        insert(Account), [{"org_id": org_id, "id": str(kind), "kind": str(kind)} for kind in kinds]
    )


def open_family_account(session: Session, org_id: str, kind: AccountKind) -> None:
    """Create an org's `children` or `parent` account, at zero, unless it has it already."""
    if str(kind) not in balances(session, org_id, [str(kind)]):
        session.add(Account(org_id=org_id, id=str(kind), kind=str(kind), balance=0, held=0))


def open_wallet(session: Session, org_id: str, member_id: str) -> None:
    """Create a member's empty wallet."""
    session.add(
        Account(
            org_id=org_id,
            id=wallet_account(member_id),
            kind=AccountKind.WALLET,
            member_id=member_id,
            balance=0,
            held=0,
        )
    )


def balances(session: Session, org_id: str, account_ids: Iterable[str]) -> dict[str, int]:
    """Return the posted balances of some accounts."""
    rows = session.execute(
        select(Account.id, Account.balance).where(
            Account.org_id == org_id, Account.id.in_(list(account_ids))
        )
    )
    return {account_id: balance for account_id, balance in rows}


@dataclass
class Posting:
    """The transfers one request makes: they share a batch id and commit together."""

    session: Session
    org_id: str
    actor: str
    now: datetime
    batch_id: str = field(default_factory=lambda: new_id("bat"))
    rows: list[dict[str, Any]] = field(default_factory=list)
    _inserted: int = 0

    # The two account changes of a usage charge's fast path (services/charging.py): Core
    # statements built once and bound per charge, run on the transaction's connection with no
    # Posting made, as the hottest write there is cannot afford the ORM.
    _ACCOUNTS: ClassVar[Table] = table_of(Account)
    _DEBIT_WALLET: ClassVar[Update] = (
        update(_ACCOUNTS)
        .where(
            _ACCOUNTS.c.org_id == bindparam("org"),
            _ACCOUNTS.c.id == bindparam("wallet"),
            _ACCOUNTS.c.balance - _ACCOUNTS.c.held >= bindparam("amount"),
        )
        .values(balance=_ACCOUNTS.c.balance - bindparam("amount"))
        .returning(_ACCOUNTS.c.balance, _ACCOUNTS.c.held)
    )
    _CREDIT_USAGE: ClassVar[Update] = (
        update(_ACCOUNTS)
        .where(
            _ACCOUNTS.c.org_id == bindparam("org"),
            _ACCOUNTS.c.id == literal(AccountKind.USAGE),
            _ACCOUNTS.c.balance <= MAX_TOTAL - bindparam("amount"),
        )
        .values(balance=_ACCOUNTS.c.balance + bindparam("amount"))
    )

    @staticmethod
    def charge_wallet(
        connection: Connection, org_id: str, wallet_id: str, amount: int
    ) -> Row[Any] | None:
        """A charge's fast path: take `amount` from a wallet if it can spend it; return its
        balance and held amount after, or None, and no change, if it cannot pay."""
        arguments = {"org": org_id, "wallet": wallet_id, "amount": amount}
        return connection.execute(Posting._DEBIT_WALLET, arguments).one_or_none()

    @staticmethod
    def credit_usage(connection: Connection, org_id: str, amount: int) -> None:
        """A charge's fast path: add `amount` to the org's usage account, the last statement
        before the commit (see the lock order above); LimitExceeded past its limit."""
        arguments = {"org": org_id, "amount": amount}
        if rowcount(connection.execute(Posting._CREDIT_USAGE, arguments)) != 1:
            raise limit_exceeded(f"the balance of {AccountKind.USAGE}")

    @staticmethod
    def debit_wallets(connection: Connection, org_id: str, amounts: dict[str, int]) -> None:
        """Take from each member's wallet its amount (services/many_charges.py), in one
        statement per chunk. The caller has locked the wallets and found that each can pay:
        one that cannot is a bug, and fails the transaction."""
        accounts = Posting._ACCOUNTS
        taken = 0
        for part in chunks(sorted(amounts)):
            wallets = {
                f"{WALLET_PREFIX}{member_id}": literal(amounts[member_id], BigInteger)
                for member_id in part
            }
            debit = case(wallets, value=accounts.c.id)
            taken += rowcount(
                connection.execute(
                    update(accounts)
                    .where(
                        accounts.c.org_id == org_id,
                        accounts.c.id.in_(list(wallets)),
                        accounts.c.balance - accounts.c.held >= debit,
                    )
                    .values(balance=accounts.c.balance - debit)
                )
            )
        if taken != len(amounts):
            raise RuntimeError("a wallet found able to pay under its lock could not")

    def withdraw(self, account_id: str, amount: int) -> bool:
        """Take `amount` from a pool or wallet if it can spend it; False, and no change, if not."""
        result = self.session.execute(
            bulk_update(Account)
            .where(
                Account.org_id == self.org_id,
                Account.id == account_id,
                Account.balance - Account.held >= amount,
            )
            .values(balance=Account.balance - amount)
        )
        return rowcount(result) == 1

    def withdraw_each(self, account_ids: Sequence[str], amount: int) -> bool:
        """Take `amount` from each wallet if every one can spend it; False if any cannot."""
        taken = 0
        for part in chunks(account_ids):
            result = self.session.execute(
                bulk_update(Account)
                .where(
                    Account.org_id == self.org_id,
                    among(self.session, Account.id, part),
                    Account.balance - Account.held >= amount,
                )
                .values(balance=Account.balance - amount)
            )
            taken += rowcount(result)
        # Fewer rows than wallets: one could not pay. The caller raises and all rolls back.
        return taken == len(account_ids)

    def adjust(self, account_id: str, delta: int) -> None:
        """Add `delta` to an account that may go anywhere its constraints allow."""
        result = self.session.execute(
            bulk_update(Account)
            .where(
                Account.org_id == self.org_id,
                Account.id == account_id,
                within_limit(Account.balance, delta),
            )
            .values(balance=Account.balance + delta)
        )
        if rowcount(result) != 1:
            if account_id in balances(self.session, self.org_id, [account_id]):
                raise limit_exceeded(f"the balance of {account_id}")
            raise LookupError(f"no account {account_id} in org {self.org_id}")

    def deposit_each(self, account_ids: Sequence[str], amount: int) -> None:
        """Add `amount` to each of several accounts, in one statement per chunk."""
        changed = 0
        for part in chunks(account_ids):
            changed += rowcount(
                self.session.execute(
                    bulk_update(Account)
                    .where(
                        Account.org_id == self.org_id,
                        among(self.session, Account.id, part),
                        within_limit(Account.balance, amount),
                    )
                    .values(balance=Account.balance + amount)
                )
            )
        if changed != len(account_ids):
            raise limit_exceeded("a wallet's balance")

    def withdraw_spendable_each(self, account_ids: Sequence[str]) -> None:
        """Take all that each wallet can spend, leaving what it holds. The caller has locked
        the wallets and read what each can spend: that is what leaves."""
        for part in chunks(account_ids):
            self.session.execute(
                bulk_update(Account)
                .where(Account.org_id == self.org_id, among(self.session, Account.id, part))
                .values(balance=Account.held)
            )

    def empty_each(self, account_ids: Sequence[str]) -> list[tuple[str, str | None, int]]:
        """Take every credit from these wallets, holds released first; return (account,
        member, balance) of each that had any, in id order."""
        taken: list[tuple[str, str | None, int]] = []
        for part in chunks(account_ids):
            taken.extend(
                self.session.execute(
                    select(Account.id, Account.member_id, Account.balance)
                    .where(
                        Account.org_id == self.org_id,
                        among(self.session, Account.id, part),
                        Account.balance > 0,
                    )
                    .order_by(Account.id)
                    .with_for_update(key_share=True)
                ).tuples()
            )
            self.session.execute(
                bulk_update(Account)
                .where(Account.org_id == self.org_id, among(self.session, Account.id, part))
                .values(balance=0)
            )
        return taken

    def reserve(self, account_id: str, amount: int) -> bool:
        """Hold `amount` of a wallet's credits if it can spend them; False, and no change, if
        not. Held credits stay in the balance but cannot be spent."""
        result = self.session.execute(
            bulk_update(Account)
            .where(
                Account.org_id == self.org_id,
                Account.id == account_id,
                Account.balance - Account.held >= amount,
            )
            .values(held=Account.held + amount)
        )
        return rowcount(result) == 1

    def capture(self, account_id: str, amount: int, *, reserved: int) -> None:
        """Close a hold of `reserved` on a wallet: `amount` (at most `reserved`) leaves it,
        the rest can be spent again."""
        self.session.execute(
            bulk_update(Account)
            .where(Account.org_id == self.org_id, Account.id == account_id)
            .values(balance=Account.balance - amount, held=Account.held - reserved)
        )

    def release(self, account_id: str, amount: int) -> None:
        """Let go of `amount` held on a wallet: it can be spent again."""
        self.session.execute(
            bulk_update(Account)
            .where(Account.org_id == self.org_id, Account.id == account_id)
            .values(held=Account.held - amount)
        )

    def release_all(self, account_ids: Sequence[str]) -> None:
        """Let go of everything held on these wallets and their lots (their holds are
        closed)."""
        for part in chunks(account_ids):
            self.session.execute(
                bulk_update(Account)
                .where(Account.org_id == self.org_id, among(self.session, Account.id, part))
                .values(held=0)
            )
            self.session.execute(
                bulk_update(LotBalance)
                .where(
                    LotBalance.org_id == self.org_id,
                    among(self.session, LotBalance.account_id, part),
                    LotBalance.held > 0,
                )
                .values(held=0)
            )

    def record(
        self,
        kind: TransferKind,
        debit: str,
        credit: str,
        amount: int,
        *,
        member_id: str | None = None,
        hold_id: str | None = None,
        reference: str | None = None,
        metrics: dict[str, int] | None = None,
        lots: Sequence[lots_of.Share] | None = None,
        new_lot: dict[str, Any] | None = None,
        release: Sequence[lots_of.Share] | None = None,
        as_of: datetime | None = None,
    ) -> dict[str, Any]:
        """Queue the transfer row for an account change already made; returns the row. Its
        lots are chosen when it is flushed (services/lots.py), unless `lots` names them;
        `new_lot` (a purchase) makes a lot of these terms; `release` lets go of a hold's
        shares of the debited wallet first; `as_of` is the instant its lots are chosen at (a
        burn posted up to a lot's expiry could still spend that lot)."""
        row: dict[str, Any] = {
            "org_id": self.org_id,
            "id": new_id("trf"),
            "batch_id": self.batch_id,
            "kind": str(kind),
            "debit_account_id": debit,
            "credit_account_id": credit,
            "amount": amount,
            "member_id": member_id,
            "hold_id": hold_id,
            "reference": reference,
            "metrics": metrics,
            "actor": self.actor,
            "created_at": self.now,
        }
        if lots is not None:
            row["_lots"] = list(lots)
        if new_lot is not None:
            row["_new_lot"] = new_lot
        if release:
            row["_release"] = list(release)
        if as_of is not None:
            row["_as_of"] = as_of
        self.rows.append(row)
        return row

    def flush(self) -> None:
        """Insert the transfers queued since the last flush; `rows` keeps them all."""
        pending = self.rows[self._inserted :]
        if pending:
            lots_of.trace(self.session, self.org_id, pending, self.now)
            insert_rows(self.session.connection(), _TRANSFERS, pending)
            note_transfers(self.session, (row["kind"] for row in pending))
            self._inserted = len(self.rows)


def rowcount(result: Any) -> int:
    """Return how many rows an UPDATE or DELETE matched."""
    return int(result.rowcount)
