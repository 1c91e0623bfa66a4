"""A write the state refused is remembered under its idempotency key, like a success."""

from __future__ import annotations

import pytest

from creditpool.domain.amounts import credits
from creditpool.domain.errors import IdempotencyMismatch, InsufficientCredits, InvalidAmount
from creditpool.services import credits as pool
from creditpool.services import reports
from creditpool.services.targets import Target
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.factories import OPERATOR, add_members, make_org


def test_a_refusal_is_answered_again_even_after_the_state_would_allow_it(
    uow: UnitOfWork,
) -> None:
    org = make_org(uow, purchase="5")
    [student] = add_members(uow, org.id, 1)
    everyone = Target.members([student.id])

    with pytest.raises(InsufficientCredits):
        pool.allocate_credits(
            uow, org.id, everyone, credits("8"), actor=OPERATOR, idempotency_key="k-1"
        )
    pool.record_purchase(uow, org.id, credits("10"), actor=OPERATOR)

    # The pool now holds 15, enough for 8; the retry under the same key still answers the
    # first refusal, and nothing moves.
    with pytest.raises(InsufficientCredits) as replayed:
        pool.allocate_credits(
            uow, org.id, everyone, credits("8"), actor=OPERATOR, idempotency_key="k-1"
        )
    assert "needed" in replayed.value.detail
    assert reports.get_balance(uow, org.id).available == credits("15")

    # The same key with another amount is a mistake, not a new request.
    with pytest.raises(IdempotencyMismatch):
        pool.allocate_credits(
            uow, org.id, everyone, credits("7"), actor=OPERATOR, idempotency_key="k-1"
        )

    # A fresh key is a fresh request, and succeeds.
    done = pool.allocate_credits(
        uow, org.id, everyone, credits("8"), actor=OPERATOR, idempotency_key="k-2"
    )
    assert done.total == credits("8")


def test_malformed_arguments_do_not_use_up_the_key(uow: UnitOfWork) -> None:
    org = make_org(uow, purchase="5")
    with pytest.raises(InvalidAmount):
        pool.record_purchase(uow, org.id, 0, actor=OPERATOR, idempotency_key="k-1")
    bought = pool.record_purchase(uow, org.id, credits("1"), actor=OPERATOR, idempotency_key="k-1")
    assert bought.amount == credits("1")
