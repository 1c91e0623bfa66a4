"""Migration 0010 (lots) on a database that already keeps books, on both engines.

Each test has a database of its own. The books are kept at the newest revision through the
services, then the schema goes down to 0009, which drops every trace of lots and leaves the
ledger as 0009's code kept it (no expiry was posted), and up again: what 0010 makes of it is
then compared with the accounts, figure by figure, and the audit must find it sound.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, create_engine, inspect, make_url, select, text

from creditpool.domain.amounts import credits
from creditpool.domain.model import AccountKind, HoldStatus, TransferKind
from creditpool.domain.policies import SettingsChange
from creditpool.services import credits as credit_service
from creditpool.services import families, holds, usage
from creditpool.services.audit import audit
from creditpool.services.ledger import wallet_account
from creditpool.services.targets import Target
from creditpool.storage.database import create_database_engine
from creditpool.storage.migrate import alembic_config, upgrade
from creditpool.storage.schema import Account, Hold, Lot, LotBalance, Org, Transfer
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.clock import FakeClock
from tests.support.factories import OPERATOR, add_members, make_org, make_user

USAGE_KEY = "apikey:test"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of the test's own, at the newest revision."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'books.db'}"
        upgrade(url)
        yield url
        return
    server = make_url(request.getfixturevalue("postgresql_url"))
    name = f"migration_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = server.set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def engine_of(database_url: str) -> Iterator[Engine]:
    engine = create_database_engine(database_url)
    yield engine
    engine.dispose()


@dataclass(frozen=True)
class Books:
    """A parent that bought twice, allotted and took back from its child, whose wallets hold,
    spent and keep a pending hold; a child that bought too; an org that never moved a credit."""

    parent: str
    child: str
    idle: str
    holder: str
    hold: str


def keep_books(engine: Engine, clock: FakeClock) -> Books:
    uow = UnitOfWork.for_engine(engine, clock)
    # Three licensed seats at 365 credits a year: the parent's pool burns 3 credits a day.
    parent = make_org(uow, name="District", settings=SettingsChange(rate_licensed=credits("365")))
    credit_service.record_purchase(uow, parent.id, credits("100"), actor=OPERATOR)
    credit_service.record_purchase(uow, parent.id, credits("20"), actor=OPERATOR)
    spender, holder = add_members(uow, parent.id, 2)
    credit_service.allocate_credits(
        uow, parent.id, Target.members([spender.id, holder.id]), credits("30"), actor=OPERATOR
    )
    usage.charge_usage(uow, parent.id, spender.id, credits("12"), actor=USAGE_KEY)
    voided = holds.place_hold(uow, parent.id, holder.id, credits("3"), actor=USAGE_KEY)
    holds.void_hold(uow, parent.id, voided.id, actor=USAGE_KEY)
    pending = holds.place_hold(
        uow, parent.id, holder.id, credits("8"), expires_in=holds.MAX_HOLD_SECONDS, actor=USAGE_KEY
    )
    owner = make_user(uow, "Owner of the school")
    child = families.create_child(
        uow, parent.id, name="School", owner_user_id=owner.id, actor=OPERATOR
    )
    families.allot_to_child(uow, parent.id, child.id, credits("40"), actor=OPERATOR)
    families.take_back_from_child(uow, parent.id, child.id, credits("15"), actor=OPERATOR)
    credit_service.record_purchase(uow, child.id, credits("7"), actor=OPERATOR)
    (pupil,) = add_members(uow, child.id, 1)
    credit_service.allocate_credits(
        uow, child.id, Target.members([pupil.id]), credits("4"), actor=OPERATOR
    )
    usage.charge_usage(uow, child.id, pupil.id, credits("1"), actor=USAGE_KEY)
    idle = make_org(uow, name="Idle")
    clock.advance(days=1)
    # A write a day later posts the parent's burn.
    credit_service.allocate_credits(
        uow, parent.id, Target.members([spender.id]), credits("1"), actor=OPERATOR
    )
    uow.close()  # its connection goes back to the pool before the migrations dispose of it
    return Books(parent.id, child.id, idle.id, holder.id, pending.id)


def revision(engine: Engine) -> str:
    with engine.connect() as connection:
        return str(connection.execute(text("SELECT version_num FROM alembic_version")).scalar())


def opening_lot(org_id: str) -> str:
    return "lot_" + org_id.removeprefix("org_")


def rows(engine: Engine, query: Any) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(query).tuples())


def test_0010_gives_the_books_kept_before_it_one_opening_lot_per_org(
    database_url: str, engine_of: Engine, clock: FakeClock
) -> None:
    books = keep_books(engine_of, clock)
    config = alembic_config(database_url)

    command.downgrade(config, "0009")
    assert revision(engine_of) == "0009"
    assert "lots" not in inspect(engine_of).get_table_names()
    command.upgrade(config, "head")
    engine_of.dispose()  # the schema changed under the pool's connections

    balance = {
        (org, account): (value, held)
        for org, account, value, held in rows(
            engine_of, select(Account.org_id, Account.id, Account.balance, Account.held)
        )
    }
    parent_lot, child_lot = opening_lot(books.parent), opening_lot(books.child)
    lots = {
        org: (lot, source, parent, amount, moved, metered, expired, expires_at, priority)
        for org, lot, source, parent, amount, moved, metered, expired, expires_at, priority in rows(
            engine_of,
            select(
                Lot.org_id,
                Lot.id,
                Lot.source,
                Lot.parent_lot_id,
                Lot.amount,
                Lot.moved,
                Lot.metered,
                Lot.expired,
                Lot.expires_at,
                Lot.priority,
            ),
        )
    }
    parent_burnt = balance[(books.parent, AccountKind.METERED)][0]
    child_burnt = balance[(books.child, AccountKind.METERED)][0]
    assert parent_burnt > 0
    # The parent's lot: all it bought; out with its child, what the child still has of it.
    assert lots[books.parent] == (
        parent_lot,
        "purchase",
        None,
        credits("120"),
        credits("25"),
        parent_burnt,
        0,
        None,
        50,
    )
    # The child's: all it received from the parent's lot and bought; what went back, moved.
    assert lots[books.child] == (
        child_lot,
        "parent",
        parent_lot,
        credits("47"),
        credits("15"),
        child_burnt,
        0,
        None,
        50,
    )
    assert books.idle not in lots

    # Each pool and wallet holds its balance, and its held, all of its org's one lot.
    holdings = {
        (org, account): (lot, amount, held)
        for org, account, lot, amount, held in rows(
            engine_of,
            select(
                LotBalance.org_id,
                LotBalance.account_id,
                LotBalance.lot_id,
                LotBalance.amount,
                LotBalance.held,
            ),
        )
    }
    assert holdings == {
        key: (opening_lot(key[0]), value, held)
        for key, (value, held) in balance.items()
        if (key[1] == AccountKind.POOL or key[1].startswith("wallet:")) and value > 0
    }
    assert holdings[(books.parent, wallet_account(books.holder))][2] == credits("8")

    # Every transfer moved its org's lot; the pending hold keeps it, closed holds keep none.
    traces = rows(engine_of, select(Transfer.org_id, Transfer.amount, Transfer.lots))
    assert traces
    assert all(
        lots == [{"lot_id": opening_lot(org), "amount": amount}] for org, amount, lots in traces
    )
    kept = {
        hold: (status, lots)
        for hold, status, lots in rows(
            engine_of, select(Hold.id, Hold.status, Hold.lots).where(Hold.org_id == books.parent)
        )
    }
    assert kept.pop(books.hold) == (
        HoldStatus.PENDING,
        [{"lot_id": parent_lot, "amount": credits("8")}],
    )
    assert [lots for _, lots in kept.values()] == [None]

    sole = dict(rows(engine_of, select(Org.id, Org.sole_lot_id)))
    assert sole == {books.parent: parent_lot, books.child: child_lot, books.idle: None}
    assert {org for (org, account), value in balance.items() if account == AccountKind.EXPIRED} == {
        books.parent,
        books.child,
        books.idle,
    }

    uow = UnitOfWork.for_engine(engine_of, clock)
    assert audit(uow).breaches == []
    # The migrated books go on: a charge spends the opening lot, a purchase opens a second.
    usage.charge_usage(uow, books.parent, books.holder, credits("2"), actor=USAGE_KEY)
    credit_service.record_purchase(
        uow, books.parent, credits("9"), actor=OPERATOR, expires_at=clock.now() + timedelta(days=1)
    )
    assert audit(uow).breaches == []
    uow.close()


def test_0010_cannot_be_undone_once_an_expiry_was_posted(
    database_url: str, engine_of: Engine, clock: FakeClock
) -> None:
    uow = UnitOfWork.for_engine(engine_of, clock)
    org = make_org(uow, purchase="10")
    credit_service.record_purchase(
        uow, org.id, credits("5"), actor=OPERATOR, expires_at=clock.now() + timedelta(days=1)
    )
    clock.advance(days=2)
    credit_service.record_purchase(uow, org.id, credits("1"), actor=OPERATOR)  # posts the expiry
    uow.close()
    expiries = rows(
        engine_of,
        select(Transfer.amount).where(Transfer.kind == TransferKind.EXPIRY),
    )
    assert expiries == [(credits("5"),)]

    with pytest.raises(RuntimeError, match="1 expiry transfers were posted"):
        command.downgrade(alembic_config(database_url), "0009")

    assert revision(engine_of) == "0010"
    assert {"lots", "lot_balances"} <= set(inspect(engine_of).get_table_names())
    reader = UnitOfWork.for_engine(engine_of, clock)
    assert audit(reader).clean
    reader.close()
