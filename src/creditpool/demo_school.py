"""A demo school of any size, filled in bulk, to try the pages at scale.

The org and its owner go through the services; the members, their wallets and a term of
history (the purchase through the ledger's posting, then allotments and usage) are inserted in
large batches in one transaction, as the services would have written them: every wallet's
balance equals its transfers, every credit in a wallet came from the pool and every credit in
the pool from the purchase, the running totals and the seat counts match, so `creditpool audit`
stays clean. The history is dated over the last 30 days, and the pool's daily series is rolled
up at the end, as a first read would.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import insert, text, update

from creditpool.domain.amounts import credits, format_credits
from creditpool.domain.model import (
    DEFAULT_PRIORITY,
    AccountKind,
    MemberStatus,
    Role,
    Seat,
    TransferKind,
)
from creditpool.services import ledger, lots, orgs, pool_series, users
from creditpool.services.ledger import wallet_account
from creditpool.services.transactions import run_write
from creditpool.storage.bulk import copy_rows
from creditpool.storage.ids import new_id
from creditpool.storage.schema import (
    Account,
    Group,
    GroupMember,
    LotBalance,
    Member,
    Org,
    Transfer,
    UsageTotal,
    User,
)
from creditpool.storage.unit_of_work import UnitOfWork

ACTOR = "demo"
BATCH_ROWS = 5000
CHUNK_MEMBERS = 20_000  # members made, inserted and let go at a time
TERM = timedelta(days=30)
FIRST_ALLOTMENT = credits("10")
SECOND_ALLOTMENT = credits("5")  # to the first half of the classes, at the end of the term
RENDER_COST = credits("0.5")
FIRST = (  # noqa: SIM905 - a list of names reads best as one string
    "Ada Ben Cleo Dev Emma Farid Gia Hugo Ines Jonas Kira Leo Mila Nour Omar Pia Quinn Rosa "
    "Sami Tara Ugo Vera Wen Xavi Yara Zane Amir Bea Cyril Dina Eli Fern Gus Hana Ivo Jade"
).split()
LAST = (  # noqa: SIM905
    "Adams Baker Costa Dubois Evans Fischer Garcia Horvat Ito Jensen Kowalski Lopez Moreau "
    "Nakamura Okafor Petrov Quispe Rossi Silva Tanaka Usman Varga Weber Xu Yilmaz Zhang"
).split()


@dataclass(frozen=True)
class School:
    """A filled demo school: its org, how to sign in as its owner (the password is shown
    this once), and what was made, as lines of text."""

    org_id: str
    owner_email: str
    owner_password: str
    lines: list[str]
    members: int = 0


def _head(prefix: str) -> str:
    """The start of a run of ids: a fresh id's time and 20 random bits, to which a 12-digit
    counter is added, so the run sorts as counted and never meets another school's."""
    return new_id(prefix)[: len(prefix) + 1 + 14]


def _insert(uow: UnitOfWork, table: type[Any], rows: list[dict[str, Any]]) -> None:
    """Insert many rows of a table the fastest way each engine has: COPY on PostgreSQL, one
    prepared statement run for every row on SQLite. Values are written as SQLAlchemy would
    (SQLite: naive UTC instants with microseconds, JSON as text)."""
    if not rows:
        return
    name, columns = table.__tablename__, list(rows[0])
    connection = uow.session.connection()
    if uow.dialect == "postgresql":
        copy_rows(connection, name, rows)
        return
    # Names from our own schema, never from input.
    marks = ", ".join("?" * len(columns))
    statement = f"INSERT INTO {name} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608
    for start in range(0, len(rows), BATCH_ROWS):
        part = rows[start : start + BATCH_ROWS]
        connection.exec_driver_sql(
            statement, [tuple(_for_sqlite(row[column]) for column in columns) for row in part]
        )


def _for_sqlite(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return json.dumps(value) if isinstance(value, dict | list) else value


def fill_school(
    uow: UnitOfWork, *, members: int, name: str = "Demo school", extra: int = 0
) -> School:
    """Make a school of `members` members besides its owner (classes, seats of every kind, a
    few managers and removed members, a term of allotments and usage), on any database. The
    term's one purchase buys `extra` micro-credits more than the term needs."""
    if members < 0:
        raise ValueError("a school has zero members or more")
    tag = secrets.token_hex(3)
    domain = f"school-{tag}.demo.creditpool.test"
    password = secrets.token_urlsafe(12)
    owner = users.create_user(
        uow,
        email=f"olive.owner@{domain}",
        name="Olive Owner",
        password=password,
        on_created=_confirmed,
    )
    org = orgs.create_org(uow, name=f"{name} {tag}", owner_user_id=owner.id, actor=ACTOR)
    students = sum(_is_student(i) for i in range(members))
    needed = sum(_allotted(i, members) for i in range(members))
    used = sum(_renders(i) * RENDER_COST for i in range(members) if _is_student(i))
    spare = max(credits("100"), needed // 4) + extra
    run_write(uow, partial(_fill, uow, org.id, members, domain, bought=needed + spare))
    run_write(uow, partial(pool_series.roll_up, uow, org.id))
    _analyze(uow)
    lines = [
        f"Demo school: {org.name!r} ({org.id}) with {members} members besides its owner",
        f"  bought {format_credits(needed + spare)} credits; allotted "
        f"{format_credits(needed)} to {students} students, who used {format_credits(used)}",
        f"  sign in as its owner: {owner.email}  {password}  (shown this once)",
    ]
    return School(org.id, owner.email, password, lines, members)


def _analyze(uow: UnitOfWork) -> None:
    """Have the database look again at the tables just filled, as it would on its own later:
    until it does, PostgreSQL plans a school of thousands as if its tables were still empty
    (a balance read scanned every wallet of the org instead of its four accounts)."""
    run_write(uow, lambda: uow.session.execute(text("ANALYZE")))


def _confirmed(user: User) -> None:
    user.email_verified = True  # a made-up address: nobody could confirm it


def _role(i: int) -> Role:
    return Role.MANAGER if i % 500 == 7 else Role.MEMBER


def _removed(i: int) -> bool:
    return i % 50 == 49


def _seat(i: int) -> Seat:
    return Seat.EXTERNAL if i % 20 == 3 else Seat.UNLICENSED if i % 10 == 5 else Seat.LICENSED


def _groups(members: int) -> int:
    return max(3, min(40, members // 30))


def _group(i: int, members: int) -> int:
    return i % _groups(members)


def _renders(i: int) -> int:
    """How many renders a student made: most some, up to 12 (6 credits), a few none."""
    return 0 if i % 7 == 0 else (i * 7919) % 12 + 1


def _is_student(i: int) -> bool:
    return _role(i) == Role.MEMBER and not _removed(i)


def _allotted(i: int, count: int) -> int:
    """What a member was allotted: 10 at the start of the term to every student, 5 more at its
    end to those of the first half of the classes."""
    if not _is_student(i):
        return 0
    in_second = _group(i, count) < (_groups(count) + 1) // 2
    return FIRST_ALLOTMENT + (SECOND_ALLOTMENT if in_second else 0)


def _fill(uow: UnitOfWork, org_id: str, count: int, domain: str, *, bought: int) -> None:
    """The members, their wallets, classes and history, a chunk of members at a time (a
    million members never sit in memory at once); then the pool's and the usage account's
    balances and the seat counts."""
    session = uow.session
    start = uow.now - TERM
    heads = {prefix: _head(prefix) for prefix in ("usr", "mem", "grp", "trf", "bat")}
    history = _History(org_id, start, heads["trf"], heads["bat"], count)
    # The term's purchase, dated at its start like the rest of its history, and numbered as
    # its first transfer: a fresh id made in the same millisecond as the history's head could
    # sort after the history's ids, and the pool's series reads transfers in id order.
    purchase = ledger.Posting(session, org_id, ACTOR, start)
    purchase.adjust(AccountKind.PURCHASES, -bought)
    purchase.adjust(AccountKind.POOL, bought)
    row = purchase.record(
        TransferKind.PURCHASE,
        AccountKind.PURCHASES,
        AccountKind.POOL,
        bought,
        reference="term",
        new_lot={"priority": DEFAULT_PRIORITY, "expires_at": None},
    )
    row["id"] = history.first_id()
    purchase.flush()
    # The term's one lot: every credit of the history below is of it.
    history.lot_id = row["lots"][0]["lot_id"]
    group_ids = [f"{heads['grp']}{k:012d}" for k in range(_groups(count))]
    session.execute(
        insert(Group),
        [
            {"org_id": org_id, "id": group_id, "name": f"Class {k + 1}", "created_at": start}
            for k, group_id in enumerate(group_ids)
        ],
    )
    for begin in range(0, count, CHUNK_MEMBERS):
        chunk = range(begin, min(count, begin + CHUNK_MEMBERS))
        member_ids = {i: f"{heads['mem']}{i:012d}" for i in chunk}
        people, memberships, wallets = [], [], []
        for i in chunk:
            first, last = FIRST[i % len(FIRST)], LAST[(i // len(FIRST)) % len(LAST)]
            user_id = f"{heads['usr']}{i:012d}"
            people.append(
                {
                    "id": user_id,
                    "email": f"{first.lower()}.{last.lower()}.{i}@{domain}",
                    "name": f"{first} {last}",
                    "password_hash": None,
                    "is_operator": False,
                    "email_verified": True,
                    "created_at": start,
                }
            )
            allocated = _allotted(i, count)
            used = _renders(i) * RENDER_COST if allocated else 0
            memberships.append(
                {
                    "org_id": org_id,
                    "id": member_ids[i],
                    "user_id": user_id,
                    "role": str(_role(i)),
                    "seat": str(_seat(i)),
                    "status": str(MemberStatus.REMOVED if _removed(i) else MemberStatus.ACTIVE),
                    "allocated_total": allocated,
                    "auto_allocated_total": 0,
                    "used_total": used,
                    # No budget per period in the demo: its counters stand at zero.
                    "auto_period_allocated": 0,
                    "period_used_base": 0,
                    "joined_at": start + timedelta(minutes=i % 600),
                    "removed_at": start + timedelta(days=2) if _removed(i) else None,
                }
            )
            wallets.append(
                {
                    "org_id": org_id,
                    "id": wallet_account(member_ids[i]),
                    "kind": str(AccountKind.WALLET),
                    "member_id": member_ids[i],
                    "balance": allocated - used,
                    "held": 0,
                }
            )
        placed = [
            {"org_id": org_id, "group_id": group_ids[_group(i, count)], "member_id": member_ids[i]}
            for i in chunk
        ]
        for table, rows in ((User, people), (Member, memberships), (Account, wallets)):
            _insert(uow, table, rows)
        held = [
            {
                "org_id": org_id,
                "account_id": wallet["id"],
                "lot_id": history.lot_id,
                "amount": wallet["balance"],
                "held": 0,
            }
            for wallet in wallets
            if wallet["balance"]
        ]
        _insert(uow, LotBalance, held)
        _insert(uow, GroupMember, placed)
        moves, totals = history.of(member_ids)
        _insert(uow, Transfer, moves)
        _insert(uow, UsageTotal, totals)
    posting = ledger.Posting(session, org_id, ACTOR, start)
    posting.adjust(AccountKind.POOL, -history.allotted)
    posting.adjust(AccountKind.USAGE, history.used)
    lots.add_to_holdings(
        session, org_id, {(AccountKind.POOL, history.lot_id): [-history.allotted, 0]}
    )
    active = [i for i in range(count) if not _removed(i)]
    session.execute(
        update(Org)
        .where(Org.id == org_id)
        .values(
            licensed_seats=Org.licensed_seats + sum(_seat(i) == Seat.LICENSED for i in active),
            unlicensed_seats=sum(_seat(i) == Seat.UNLICENSED for i in active),
            external_seats=sum(_seat(i) == Seat.EXTERNAL for i in active),
            created_at=start,
            metered_since=start,
        )
        .execution_options(synchronize_session=False)
    )


class _History:
    """The term's transfers, a chunk of members at a time. A transfer's id counts the minutes
    from the term's start, then the transfers of that minute: ids follow time across chunks,
    as the pool's series and "newest first" expect."""

    def __init__(self, org_id: str, start: datetime, head: str, batch_head: str, count: int):
        self.org_id, self.start, self.head, self.batch_head = org_id, start, head, batch_head
        self.count = count
        self.batches = {1: new_id("bat"), 28: new_id("bat")}  # the two allotments
        self.in_minute: dict[int, int] = {}
        self.allotted = self.used = 0
        self.lot_id = ""  # the term's lot, once bought

    def first_id(self) -> str:
        """The id of the term's first transfer, at its start, before any other."""
        return self._id(self.start)

    def _id(self, at: datetime) -> str:
        minute = int((at - self.start).total_seconds() // 60)
        seq = self.in_minute[minute] = self.in_minute.get(minute, -1) + 1
        return f"{self.head}{minute:05d}{seq:07d}"

    def _transfer(
        self, kind: TransferKind, debit: str, credit: str, amount: int, at: datetime, **rest: Any
    ) -> dict[str, Any]:
        return {
            "org_id": self.org_id,
            "id": self._id(at),
            "kind": str(kind),
            "debit_account_id": debit,
            "credit_account_id": credit,
            "amount": amount,
            "hold_id": None,
            "reference": None,
            "actor": ACTOR,
            "created_at": at,
            "lots": [{"lot_id": self.lot_id, "amount": amount}],
            **rest,
        }

    def of(self, member_ids: dict[int, str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The transfers and usage totals of these members (by their number)."""
        moves: list[dict[str, Any]] = []
        totals: list[dict[str, Any]] = []
        for i, member in member_ids.items():
            allotted = _allotted(i, self.count)
            if not allotted:
                continue
            wallet = wallet_account(member)
            for day, amount in ((1, FIRST_ALLOTMENT), (28, allotted - FIRST_ALLOTMENT)):
                if amount:
                    moves.append(
                        self._transfer(
                            TransferKind.ALLOCATION,
                            AccountKind.POOL,
                            wallet,
                            amount,
                            self.start + timedelta(days=day),
                            member_id=member,
                            batch_id=self.batches[day],
                            metrics=None,
                        )
                    )
            self.allotted += allotted
            renders = _renders(i)
            if renders:
                metrics = {"renders": renders, "frames": 240 * renders}
                moves.append(
                    self._transfer(
                        TransferKind.USAGE,
                        wallet,
                        AccountKind.USAGE,
                        renders * RENDER_COST,
                        self.start + timedelta(days=2 + i % 26, minutes=i % 997),
                        member_id=member,
                        batch_id=f"{self.batch_head}{i:012d}",
                        metrics=metrics,
                    )
                )
                self.used += renders * RENDER_COST
                totals += [
                    {"org_id": self.org_id, "member_id": member, "metric": name, "total": value}
                    for name, value in metrics.items()
                ]
        return moves, totals
