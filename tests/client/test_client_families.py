"""Pools inside pools through the Python client, blocking and async, against a real server on
each engine: a child opened, listed, funded and drawn back, and the refusals as typed errors."""

from __future__ import annotations

from decimal import Decimal

import pytest

from creditpool.client import (
    AsyncClient,
    Client,
    FamilyTransfer,
    Forbidden,
    InsufficientCredits,
    NotFound,
    ValidationError,
)
from tests.client.conftest import OPERATOR_KEY, People, Served, a_class, a_person


def test_a_child_is_opened_funded_and_drawn_back(served: Served, people: People) -> None:
    school = a_class(served.url, people, students=1)
    teacher = a_person(served.url, "teacher")
    with Client(served.url, token=school.owner.token) as owner:
        child = owner.create_child(org=school.org, name="Class 4B", owner_email=teacher.email)
        assert (child.name, child.parent_id) == ("Class 4B", school.org)
        assert child.rollup is not None
        assert child.rollup.orgs == 1

        moved = owner.allot_to_child(org=school.org, child=child.id, amount=Decimal("12.5"))
        assert isinstance(moved, FamilyTransfer)
        assert (moved.amount, moved.parent.available, moved.child.available) == (
            Decimal("12.5"),
            Decimal("87.5"),
            Decimal("12.5"),
        )
        with pytest.raises(InsufficientCredits):
            owner.allot_to_child(org=school.org, child=child.id, amount=Decimal("87.500001"))
        part = owner.take_back_from_child(org=school.org, child=child.id, amount=Decimal("2.5"))
        rest = owner.take_back_from_child(org=school.org, child=child.id)
        assert (part.amount, rest.amount, rest.parent.available) == (
            Decimal("2.5"),
            Decimal("10"),
            Decimal("100"),
        )
        assert [c.id for c in owner.list_children(org=school.org)] == [child.id]
        parent = owner.get_org(org=school.org)
        assert parent.parent_id is None
        assert parent.rollup is not None
        assert (parent.rollup.orgs, parent.rollup.members) == (2, 3)
        with pytest.raises(NotFound):
            owner.allot_to_child(org=school.org, child=school.org, amount=Decimal(1))
    with Client(served.url, token=school.students[0].token) as student, pytest.raises(Forbidden):
        list(student.list_children(org=school.org))


@pytest.mark.anyio
async def test_the_async_client_has_the_same_calls(served: Served, people: People) -> None:
    school = a_class(served.url, people, students=0)
    teacher = a_person(served.url, "teacher")
    async with AsyncClient(served.url, token=OPERATOR_KEY) as operator:
        child = await operator.create_child(
            org=school.org, name="Class 1A", owner_email=teacher.email, idempotency_key="c-1a"
        )
        again = await operator.create_child(
            org=school.org, name="Class 1A", owner_email=teacher.email, idempotency_key="c-1a"
        )
        assert again.id == child.id
        grandchild = await operator.create_child(
            org=child.id, name="Group", owner_email=teacher.email
        )
        with pytest.raises(ValidationError):
            await operator.create_child(
                org=grandchild.id, name="Too deep", owner_email=teacher.email
            )
        moved = await operator.allot_to_child(org=school.org, child=child.id, amount=Decimal(40))
        down = await operator.allot_to_child(org=child.id, child=grandchild.id, amount=Decimal(15))
        assert (moved.child.available, down.child.available) == (Decimal(40), Decimal(15))
        back = await operator.take_back_from_child(org=child.id, child=grandchild.id)
        assert (back.amount, back.parent.available) == (Decimal(15), Decimal(40))
        assert [c.name async for c in operator.list_children(org=school.org)] == ["Class 1A"]
