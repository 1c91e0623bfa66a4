"""The audit of lots (services/lot_audit.py), on both engines.

A family keeps its books through lots of three priorities, one of which expires while a hold
keeps part of it; the audit finds them sound. Then each test breaks one figure with a direct
write, inside the test's rolled-back transaction, and checks that the report names it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from creditpool.domain.amounts import credits
from creditpool.domain.model import AccountKind, HoldStatus, TransferKind
from creditpool.domain.policies import SettingsChange
from creditpool.services import credits as credit_service
from creditpool.services import families, holds, usage
from creditpool.services.audit import AuditReport, audit
from creditpool.services.ledger import wallet_account
from creditpool.services.targets import Target
from creditpool.storage.schema import Hold, Lot, LotBalance, Transfer
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.clock import FakeClock
from tests.support.factories import OPERATOR, add_members, make_org, make_user

USAGE_KEY = "apikey:test"


@dataclass(frozen=True)
class LotWorld:
    """A parent with three lots (`lasting`, `expiring` spent first, `last` spent last), a
    spender whose usage came from `expiring`, a holder whose pending hold keeps part of it
    past its expiry, and a child that received from `lasting` and gave some back."""

    parent: str
    child: str
    spender: str
    holder: str
    lasting: str
    expiring: str
    last: str


def buy(
    uow: UnitOfWork, org_id: str, amount: int, *, priority: int, expires_at: datetime | None
) -> str:
    """Buy a lot of this priority and expiry; its id."""
    before = lot_ids(uow, org_id)
    credit_service.record_purchase(
        uow, org_id, amount, actor=OPERATOR, priority=priority, expires_at=expires_at
    )
    (bought,) = lot_ids(uow, org_id) - before
    return bought


def lot_ids(uow: UnitOfWork, org_id: str) -> set[str]:
    with uow:
        return set(uow.session.scalars(select(Lot.id).where(Lot.org_id == org_id)))


def build(uow: UnitOfWork, clock: FakeClock) -> LotWorld:
    """The family's books: allotments, usage, a hold, metering, a move down and back, and an
    expiry posted by the first write after it."""
    # Three licensed seats at 365 credits a year: 3 credits a day burn.
    parent = make_org(uow, name="District", settings=SettingsChange(rate_licensed=credits("365")))
    lasting = buy(uow, parent.id, credits("100"), priority=50, expires_at=None)
    expiring = buy(
        uow, parent.id, credits("50"), priority=10, expires_at=clock.now() + timedelta(days=2)
    )
    last = buy(uow, parent.id, credits("20"), priority=90, expires_at=None)
    spender, holder = add_members(uow, parent.id, 2)
    # The expiring lot goes first: 30 to the spender and 20 (then 10 of `lasting`) to the holder.
    for member in (spender, holder):
        credit_service.allocate_credits(
            uow, parent.id, Target.members([member.id]), credits("30"), actor=OPERATOR
        )
    usage.charge_usage(uow, parent.id, spender.id, credits("12"), actor=USAGE_KEY)
    holds.place_hold(
        uow, parent.id, holder.id, credits("25"), expires_in=holds.MAX_HOLD_SECONDS, actor=USAGE_KEY
    )
    owner = make_user(uow, "Owner of the school")
    child = families.create_child(
        uow, parent.id, name="School", owner_user_id=owner.id, actor=OPERATOR
    )
    families.allot_to_child(uow, parent.id, child.id, credits("40"), actor=OPERATOR)
    families.take_back_from_child(uow, parent.id, child.id, credits("15"), actor=OPERATOR)
    clock.advance(days=3)
    # The first write past the expiry posts it (the spender's 18 lapse, the held 20 stay).
    credit_service.record_purchase(uow, parent.id, credits("5"), actor=OPERATOR)
    return LotWorld(parent.id, child.id, spender.id, holder.id, lasting, expiring, last)


@pytest.fixture
def world(uow: UnitOfWork, clock: FakeClock) -> LotWorld:
    return build(uow, clock)


def breaches_naming(report: AuditReport, *words: str) -> list[str]:
    return [breach for breach in report.breaches if all(word in breach for word in words)]


def corrupt(uow: UnitOfWork, statement: Any) -> None:
    """Write past the services, inside the test's transaction (rolled back at its end)."""
    with uow:
        uow.session.execute(statement)
        uow.commit()


def transfer_of(uow: UnitOfWork, org_id: str, kind: TransferKind) -> tuple[str, int]:
    """The id and amount of the org's only transfer of this kind."""
    with uow:
        ((found, amount),) = uow.session.execute(
            select(Transfer.id, Transfer.amount).where(
                Transfer.org_id == org_id, Transfer.kind == kind
            )
        ).tuples()
        return found, amount


def test_the_lots_of_a_family_that_spent_moved_and_lapsed_are_sound(
    uow: UnitOfWork, world: LotWorld
) -> None:
    report = audit(uow, world.parent)

    assert report.breaches == []
    assert any("lots: none spent past its amount" in line for line in report.checked)
    assert audit(uow, world.child).clean
    # The books did reach every kind a lot follows, and the holder still holds expired credits.
    with uow:
        kinds = set(
            uow.session.scalars(
                select(Transfer.kind).where(Transfer.org_id.in_([world.parent, world.child]))
            )
        )
        expired = uow.session.scalars(select(Lot.expired).where(Lot.id == world.expiring)).one()
        held = uow.session.scalars(
            select(LotBalance.held).where(
                LotBalance.lot_id == world.expiring,
                LotBalance.account_id == wallet_account(world.holder),
            )
        ).one()
    assert {
        TransferKind.USAGE,
        TransferKind.METERING,
        TransferKind.EXPIRY,
        TransferKind.TO_CHILD,
        TransferKind.FROM_PARENT,
        TransferKind.TO_PARENT,
        TransferKind.FROM_CHILD,
    } <= kinds
    assert expired == credits("18")
    assert held == credits("20")


def test_a_holding_that_is_not_its_account_balance_is_found(
    uow: UnitOfWork, world: LotWorld
) -> None:
    corrupt(
        uow,
        update(LotBalance)
        .where(
            LotBalance.org_id == world.parent,
            LotBalance.account_id == AccountKind.POOL,
            LotBalance.lot_id == world.last,
        )
        .values(amount=LotBalance.amount + 1),
    )

    report = audit(uow, world.parent)

    assert breaches_naming(report, world.parent, "pool has balance", "its lots hold")
    assert breaches_naming(report, f"lot {world.last} holds", "in pool", "transfers' lots")
    assert breaches_naming(report, f"lot {world.last} of amount", "in_pool")
    assert breaches_naming(audit(uow), world.parent, "pool has balance")  # unscoped too


def test_held_credits_of_a_lot_that_no_hold_keeps_are_found(
    uow: UnitOfWork, world: LotWorld
) -> None:
    wallet = wallet_account(world.holder)
    corrupt(
        uow,
        update(LotBalance)
        .where(
            LotBalance.org_id == world.parent,
            LotBalance.account_id == wallet,
            LotBalance.lot_id == world.lasting,
        )
        .values(held=LotBalance.held + 1),
    )

    report = audit(uow, world.parent)

    assert breaches_naming(report, f"{wallet} has balance", f"of which {credits('25') + 1} held")
    assert breaches_naming(
        report, f"lot {world.lasting} has {credits('5') + 1} held", "pending holds keep"
    )


def test_a_transfer_without_lots_is_found(uow: UnitOfWork, world: LotWorld) -> None:
    charged, _ = transfer_of(uow, world.parent, TransferKind.USAGE)
    corrupt(uow, update(Transfer).where(Transfer.id == charged).values(lots=None))

    report = audit(uow, world.parent)

    assert breaches_naming(report, f"transfer {charged} names no lots")
    # Without its lots the usage comes back to the spender's wallet, lot by lot.
    assert breaches_naming(report, f"lot {world.expiring} holds", wallet_account(world.spender))


def test_a_transfer_whose_lots_miss_its_amount_is_found(uow: UnitOfWork, world: LotWorld) -> None:
    charged, amount = transfer_of(uow, world.parent, TransferKind.USAGE)
    short = [{"lot_id": world.expiring, "amount": amount - 1}]
    corrupt(uow, update(Transfer).where(Transfer.id == charged).values(lots=short))

    report = audit(uow, world.parent)

    assert breaches_naming(report, f"transfer {charged} moves {amount}", f"sum to {amount - 1}")


def test_a_transfer_naming_a_lot_of_nowhere_is_found(uow: UnitOfWork, world: LotWorld) -> None:
    charged, amount = transfer_of(uow, world.parent, TransferKind.USAGE)
    elsewhere = [{"lot_id": "lot_nowhere", "amount": amount}]
    corrupt(uow, update(Transfer).where(Transfer.id == charged).values(lots=elsewhere))

    report = audit(uow, world.parent)

    assert breaches_naming(report, world.parent, "unknown lot lot_nowhere")
    assert breaches_naming(report, f"lot {world.expiring} of amount", "used 0")


def test_a_counter_differing_from_the_transfers_is_found(uow: UnitOfWork, world: LotWorld) -> None:
    corrupt(uow, update(Lot).where(Lot.id == world.lasting).values(metered=Lot.metered + 1))

    report = audit(uow, world.parent)

    assert len(report.breaches) == 1
    assert breaches_naming(report, f"lot {world.lasting} shows metered", "its transfers say")


def test_a_child_lot_larger_than_its_parent_gave_is_found(uow: UnitOfWork, world: LotWorld) -> None:
    with uow:
        ((child_lot, parent_lot),) = uow.session.execute(
            select(Lot.id, Lot.parent_lot_id).where(Lot.org_id == world.child)
        ).tuples()
    assert parent_lot == world.lasting
    corrupt(uow, update(Lot).where(Lot.id == child_lot).values(amount=Lot.amount + 1))

    report = audit(uow, world.child)

    assert breaches_naming(
        report,
        f"lot {child_lot} has amount {credits('40') + 1}",
        f"{credits('40')} entered the org",
    )
    assert breaches_naming(report, f"lot {child_lot} of amount {credits('40') + 1}")


def test_a_pending_hold_whose_lots_miss_its_amount_is_found(
    uow: UnitOfWork, world: LotWorld
) -> None:
    with uow:
        ((pending, shares),) = uow.session.execute(
            select(Hold.id, Hold.lots).where(
                Hold.org_id == world.parent, Hold.status == HoldStatus.PENDING
            )
        ).tuples()
    corrupt(uow, update(Hold).where(Hold.id == pending).values(lots=(shares or [])[:1]))

    report = audit(uow, world.parent)

    assert breaches_naming(report, f"pending hold {pending} reserves {credits('25')}")
    assert breaches_naming(report, "pending holds keep 0")
