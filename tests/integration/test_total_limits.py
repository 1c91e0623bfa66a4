"""Balances and running totals near 2^63 refuse a change that would pass the limit, on each
engine: 409 `limit_exceeded`, nothing moved. Without the guard PostgreSQL raises "bigint out
of range" and SQLite stores a float.

The rows are pushed near the limit directly with SQL: no test could charge 2^63 micro-credits
a billion credits at a time.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import update

from creditpool.domain.amounts import credits
from creditpool.domain.errors import LimitExceeded
from creditpool.domain.model import AccountKind
from creditpool.domain.policies import SettingsChange
from creditpool.services import holds, reports
from creditpool.services.credits import allocate_credits, record_purchase
from creditpool.services.ledger import wallet_account
from creditpool.services.targets import Target
from creditpool.services.totals import MAX_TOTAL
from creditpool.services.usage import charge_usage
from creditpool.services.usage_batch import charge_usage_batch
from creditpool.storage.schema import Account, Member, UsageTotal
from creditpool.storage.unit_of_work import UnitOfWork
from tests.integration.test_usage_and_holds import API_KEY, books
from tests.support.factories import OPERATOR, add_members, make_org


def set_rows(uow: UnitOfWork, model: Any, where: dict[str, str], **values: int) -> None:
    """Write values straight into rows, as no service would."""
    with uow:
        conditions = [getattr(model, name) == value for name, value in where.items()]
        uow.session.execute(update(model).where(*conditions).values(**values))
        uow.commit()


@pytest.fixture
def class_of_two(uow: UnitOfWork) -> tuple[str, str, str]:
    """An org of 100 credits; Ada and Bob with 10 each, Ada with some usage of `frames`."""
    org = make_org(uow, purchase="100")
    ada, bob = add_members(uow, org.id, 2)
    allocate_credits(uow, org.id, Target.members([ada.id, bob.id]), credits("10"), actor=OPERATOR)
    charge_usage(uow, org.id, ada.id, credits("1"), metrics={"frames": 10}, actor=API_KEY)
    return org.id, ada.id, bob.id


def refused(call: Any) -> None:
    with pytest.raises(LimitExceeded) as caught:
        call()
    assert caught.value.code == "limit_exceeded"


def test_a_charge_past_the_members_total_used_is_refused(
    uow: UnitOfWork, class_of_two: tuple[str, str, str]
) -> None:
    org, ada, _ = class_of_two
    set_rows(uow, Member, {"org_id": org, "id": ada}, used_total=MAX_TOTAL - 5)
    before = books(uow, org)
    refused(lambda: charge_usage(uow, org, ada, credits("1"), actor=API_KEY))
    assert books(uow, org) == before
    # Up to the limit exactly is still a charge.
    charge_usage(uow, org, ada, 5, actor=API_KEY)
    assert books(uow, org)[2][ada][4] == MAX_TOTAL


def test_a_charge_past_a_metric_total_is_refused(
    uow: UnitOfWork, class_of_two: tuple[str, str, str]
) -> None:
    org, ada, _ = class_of_two
    where = {"org_id": org, "member_id": ada, "metric": "frames"}
    set_rows(uow, UsageTotal, where, total=MAX_TOTAL - 10)
    before = books(uow, org)
    refused(
        lambda: charge_usage(
            uow, org, ada, credits("1"), metrics={"renders": 1, "frames": 11}, actor=API_KEY
        )
    )
    assert books(uow, org) == before
    charge_usage(uow, org, ada, credits("1"), metrics={"frames": 10}, actor=API_KEY)
    assert books(uow, org)[2][ada][5] == {"frames": MAX_TOTAL}


def test_an_allotment_past_a_members_total_or_wallet_is_refused(
    uow: UnitOfWork, class_of_two: tuple[str, str, str]
) -> None:
    org, ada, bob = class_of_two
    set_rows(uow, Member, {"org_id": org, "id": ada}, allocated_total=MAX_TOTAL - 1)
    before = books(uow, org)
    both = Target.members([ada, bob])
    refused(lambda: allocate_credits(uow, org, both, credits("1"), actor=OPERATOR))
    assert books(uow, org) == before

    set_rows(uow, Member, {"org_id": org, "id": ada}, allocated_total=0)
    set_rows(uow, Account, {"org_id": org, "id": wallet_account(bob)}, balance=MAX_TOTAL - 1)
    before = books(uow, org)
    refused(lambda: allocate_credits(uow, org, both, credits("1"), actor=OPERATOR))
    assert books(uow, org) == before


def test_an_automatic_top_up_past_the_members_total_is_refused(uow: UnitOfWork) -> None:
    auto = SettingsChange(
        auto_enabled=True, auto_bundle=credits("5"), auto_max_per_member=credits("20")
    )
    org = make_org(uow, purchase="100", settings=auto).id
    (ada,) = add_members(uow, org, 1)
    set_rows(uow, Member, {"org_id": org, "id": ada.id}, allocated_total=MAX_TOTAL - 1)
    before = books(uow, org)
    refused(lambda: charge_usage(uow, org, ada.id, credits("1"), actor=API_KEY))
    assert books(uow, org) == before


def test_a_purchase_past_the_pool_or_the_purchases_account_is_refused(
    uow: UnitOfWork, class_of_two: tuple[str, str, str]
) -> None:
    org, _, _ = class_of_two
    set_rows(uow, Account, {"org_id": org, "id": AccountKind.POOL}, balance=MAX_TOTAL - 1)
    before = books(uow, org)
    refused(lambda: record_purchase(uow, org, credits("1"), actor=OPERATOR))
    assert books(uow, org) == before

    set_rows(uow, Account, {"org_id": org, "id": AccountKind.POOL}, balance=credits("80"))
    # The purchases account goes negative: its limit is -(2^63 - 1).
    set_rows(uow, Account, {"org_id": org, "id": AccountKind.PURCHASES}, balance=-MAX_TOTAL + 1)
    refused(lambda: record_purchase(uow, org, credits("1"), actor=OPERATOR))
    assert reports.get_balance(uow, org).purchased == MAX_TOTAL - 1


def test_a_charge_past_the_usage_account_is_refused(
    uow: UnitOfWork, class_of_two: tuple[str, str, str]
) -> None:
    org, _, bob = class_of_two
    set_rows(uow, Account, {"org_id": org, "id": AccountKind.USAGE}, balance=MAX_TOTAL - 1)
    before = books(uow, org)
    refused(lambda: charge_usage(uow, org, bob, credits("1"), actor=API_KEY))
    assert books(uow, org) == before


def test_a_capture_past_the_members_total_is_refused_and_the_hold_stays(
    uow: UnitOfWork, class_of_two: tuple[str, str, str]
) -> None:
    org, ada, _ = class_of_two
    hold = holds.place_hold(uow, org, ada, credits("2"), expires_in=3600, actor=API_KEY)
    set_rows(uow, Member, {"org_id": org, "id": ada}, used_total=MAX_TOTAL - 1)
    before = books(uow, org)
    refused(lambda: holds.capture_hold(uow, org, hold.id, credits("1"), actor=API_KEY))
    assert books(uow, org) == before
    assert holds.get_hold(uow, org, hold.id).status == "pending"


def test_a_batch_event_past_a_total_is_refused_alone(
    uow: UnitOfWork, class_of_two: tuple[str, str, str]
) -> None:
    org, ada, bob = class_of_two
    set_rows(uow, Member, {"org_id": org, "id": ada}, used_total=MAX_TOTAL - 1)
    results = charge_usage_batch(
        uow,
        org,
        [
            {"key": "a", "member_id": ada, "amount": "1"},
            {"key": "b", "member_id": bob, "amount": "1"},
        ],
        actor=API_KEY,
    )
    assert [result.code for result in results] == ["limit_exceeded", None]
    figures = books(uow, org)[2]
    assert figures[ada][4] == MAX_TOTAL - 1
    assert figures[bob][4] == credits("1")
