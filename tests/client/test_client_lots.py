"""Lots through the Python client, blocking and async, against a real server on each engine:
purchases with terms, the list in spending order, the lots a charge moved, what expires when
in the balance and a member's figures, and the refusals as typed errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from creditpool.client import (
    AsyncClient,
    Client,
    Expiring,
    Forbidden,
    Lot,
    LotShare,
    ValidationError,
)
from tests.client.conftest import OPERATOR_KEY, People, Served, a_class


def _whole_second(instant: datetime) -> datetime:
    return instant.replace(microsecond=0)


def test_lots_bought_listed_spent_and_expiring(served: Served, people: People) -> None:
    school = a_class(served.url, people, students=1)  # 100 credits, a lot that never expires
    ends = _whole_second(datetime.now(UTC) + timedelta(days=30))
    with Client(served.url, token=OPERATOR_KEY) as operator:
        bought = operator.record_purchase(
            org=school.org, amount=Decimal(10), expires_at=ends, priority=5, reference="PO-1"
        )
        (share,) = bought.lots
        assert isinstance(share, LotShare)
        assert share.amount == Decimal(10)
        with pytest.raises(ValidationError):
            operator.record_purchase(org=school.org, amount=Decimal(1), priority=101)
        with pytest.raises(ValidationError):
            operator.record_purchase(
                org=school.org, amount=Decimal(1), expires_at=datetime.now(UTC) - timedelta(1)
            )
    with Client(served.url, token=school.owner.token) as owner:
        lots = list(owner.list_lots(org=school.org))
        assert all(isinstance(lot, Lot) for lot in lots)
        assert (lots[0].id, lots[0].priority, lots[0].expires_at) == (share.lot_id, 5, ends)
        assert [(lot.amount, lot.in_pool) for lot in lots] == [
            (Decimal(10), Decimal(10)),
            (Decimal(100), Decimal(100)),
        ]
        owner.allocate(org=school.org, member_ids=school.student_ids, amount=Decimal(12))
        balance = owner.balance(org=school.org)
        assert (balance.expired, balance.expiring) == (
            Decimal(0),
            [Expiring(at=ends, amount=Decimal(10))],
        )
    with Client(served.url, token=school.key) as farm:
        charged = farm.charge_usage(org=school.org, member=school.student_ids[0], amount=11)
        assert charged.transfer.lots == [
            LotShare(lot_id=lots[0].id, amount=Decimal(10)),
            LotShare(lot_id=lots[1].id, amount=Decimal(1)),
        ]
        assert charged.member.credits_expiring == []
    with Client(served.url, token=school.students[0].token) as student, pytest.raises(Forbidden):
        list(student.list_lots(org=school.org))


@pytest.mark.anyio
async def test_the_async_client_has_the_same_calls(served: Served, people: People) -> None:
    school = a_class(served.url, people, students=1, credits=Decimal(1))
    ends = _whole_second(datetime.now(UTC) + timedelta(days=7))
    async with AsyncClient(served.url, token=OPERATOR_KEY) as operator:
        await operator.record_purchase(org=school.org, amount=Decimal(4), expires_at=ends)
        lots = [lot async for lot in operator.list_lots(org=school.org)]
        assert [(lot.amount, lot.expires_at, lot.priority) for lot in lots] == [
            (Decimal(4), ends, 50),
            (Decimal(1), None, 50),
        ]
        allotted = await operator.allocate(
            org=school.org, member_ids=school.student_ids, amount=Decimal(3)
        )
        assert allotted.members[0].credits_expiring == [Expiring(at=ends, amount=Decimal(3))]
        member = await operator.get_member(org=school.org, member=school.student_ids[0])
        assert member.credits_expiring == [Expiring(at=ends, amount=Decimal(3))]
        page = await operator.list_lots(org=school.org, limit=1).page()
        assert ([lot.id for lot in page.items], page.next_cursor) == ([lots[0].id], lots[0].id)
