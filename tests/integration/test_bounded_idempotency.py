"""An idempotency record stays small however large the batch it remembers.

An allocation or revocation keeps only its batch id and total under the key; a replay lists
the members again (from the request's ids, or from the batch's transfers), as they stand now.
"""

from __future__ import annotations

import json
from typing import Any

from creditpool.domain.amounts import credits
from creditpool.domain.model import Role
from creditpool.services.credits import allocate_credits, revoke_credits
from creditpool.services.targets import Target
from creditpool.storage.schema import IdempotencyRecord
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.factories import OPERATOR, add_members, make_org

STUDENTS = 150


def _stored(uow: UnitOfWork, org_id: str, key: str) -> dict[str, Any]:
    with uow:
        record = uow.session.get(IdempotencyRecord, (org_id, OPERATOR, key))
        assert record is not None
        return dict(record.result)


def test_a_large_allocation_stores_its_batch_and_total_only_and_replays_the_same(
    uow: UnitOfWork,
) -> None:
    org = make_org(uow, purchase="1000")
    students = add_members(uow, org.id, STUDENTS)
    add_members(uow, org.id, 1, role=Role.MANAGER)  # not a student: never in "all"

    first = allocate_credits(
        uow, org.id, Target.all_students(), credits("2"), actor=OPERATOR, idempotency_key="k"
    )
    assert len(first.members) == STUDENTS

    stored = _stored(uow, org.id, "k")
    assert stored == {"batch_id": first.batch_id, "total": credits("300")}
    assert len(json.dumps(stored)) < 100  # the same size for 10 members or 10,000

    # Some credits go back from one member before the retry: the replay shows members as they
    # stand now.
    spender = students[0].id
    revoke_credits(uow, org.id, Target.members([spender]), credits("0.5"), actor=OPERATOR)
    again = allocate_credits(
        uow, org.id, Target.all_students(), credits("2"), actor=OPERATOR, idempotency_key="k"
    )
    assert (again.batch_id, again.total) == (first.batch_id, first.total)
    assert [m.id for m in again.members] == [m.id for m in first.members]
    available = {m.id: m.credits_available for m in again.members}
    assert available[spender] == credits("1.5")  # nothing allotted twice
    assert set(available.values()) == {credits("2"), credits("1.5")}


def test_a_replayed_revocation_lists_the_same_members(uow: UnitOfWork) -> None:
    org = make_org(uow, purchase="100")
    rich, empty, other = (m.id for m in add_members(uow, org.id, 3))
    allocate_credits(uow, org.id, Target.members([rich, other]), credits("3"), actor=OPERATOR)

    # Named ids: each of them again. Every student: the first answer lists each of them; the
    # replay, rebuilt from the batch's transfers, those it took credits from.
    for key, target, replayed in (
        ("named", Target.members([empty, rich, other]), {empty, rich, other}),
        ("all", Target.all_students(), {rich}),
    ):
        allocate_credits(uow, org.id, Target.members([rich]), credits("1"), actor=OPERATOR)
        first = revoke_credits(uow, org.id, target, actor=OPERATOR, idempotency_key=key)
        again = revoke_credits(uow, org.id, target, actor=OPERATOR, idempotency_key=key)
        assert (again.batch_id, again.total) == (first.batch_id, first.total)
        assert {m.id for m in first.members} == {empty, rich, other}
        assert {m.id for m in again.members} == replayed
        assert set(_stored(uow, org.id, key)) == {"batch_id", "total"}
