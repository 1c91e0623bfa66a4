"""An org whose totals stand near 2^63, on each engine: a charge or purchase that would pass a
limit is refused with 409 `limit_exceeded`, and afterwards no page and no API read answers 500.

The rows are pushed there directly with SQL (no test can charge 2^63 micro-credits a billion
credits at a time): members' running totals and usage metric totals at 2^63 - 1 (so the org's
sum of a metric passes 2^63, which SQLite's SUM() cannot hold), the pool and purchases at their
limits, and two transfers of the ledger whose sum passes 2^63 (books no service would write,
which the audit must report, not crash on).
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import insert, update

from creditpool.domain.model import AccountKind, TransferKind
from creditpool.services import audit, reports, users
from creditpool.services.ledger import wallet_account
from creditpool.services.totals import MAX_TOTAL
from creditpool.storage.schema import Account, Member, Transfer, UsageTotal
from creditpool.storage.unit_of_work import UnitOfWork
from tests.api.support import OPERATOR_KEY, PASSWORD, Api, World, csrf_of, problem

HUGE_TRANSFER = 2**62 + 1  # two of them pass 2^63


@pytest.fixture
def app_uow(app: FastAPI) -> UnitOfWork:
    """A unit of work inside the application's rolled-back transaction."""
    return UnitOfWork(app.state.session_factory, app.state.clock)


def push_to_the_limit(uow: UnitOfWork, world: World) -> None:
    org = world.org_id
    ada, bob = world.student_ids
    with uow:
        session = uow.session
        session.execute(
            update(Member)
            .where(Member.org_id == org, Member.id == ada)
            .values(
                used_total=MAX_TOTAL - 1,
                allocated_total=MAX_TOTAL - 1,
                auto_allocated_total=MAX_TOTAL - 1,
            )
        )
        session.execute(
            update(UsageTotal).where(UsageTotal.org_id == org).values(total=MAX_TOTAL - 1)
        )
        for account, balance in ((AccountKind.POOL, MAX_TOTAL - 1), ("purchases", 1 - MAX_TOTAL)):
            session.execute(
                update(Account)
                .where(Account.org_id == org, Account.id == account)
                .values(balance=balance)
            )
        session.execute(
            insert(Transfer),
            [
                {
                    "org_id": org,
                    "id": f"trf_huge{number}",
                    "batch_id": "bat_huge",
                    "kind": str(TransferKind.ALLOCATION),
                    "debit_account_id": str(AccountKind.POOL),
                    "credit_account_id": wallet_account(bob),
                    "amount": HUGE_TRANSFER,
                    "member_id": bob,
                    "actor": "test",
                    "created_at": uow.now,
                }
                for number in (1, 2)
            ],
        )
        uow.commit()


def sign_in(api: Api, email: str) -> None:
    """Sign in through the form, with the CSRF token the form carries."""
    page = api.client.get("/sign-in")
    signed_in = api.client.post(
        "/sign-in",
        data={"email": email, "password": PASSWORD, "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert signed_in.status_code in (302, 303), signed_in.text


def email_of(api: Api, token: str) -> str:
    return str(api.call("GET", "/me", token=token).json()["user"]["email"])


def readable(response: Any, what: str) -> None:
    assert response.status_code < 500, f"{what}: {response.status_code} {response.text[:500]}"
    assert response.status_code == 200, f"{what}: {response.status_code}"


def test_near_the_limit_changes_are_refused_and_every_read_still_answers(
    api: Api, world: World, app_uow: UnitOfWork
) -> None:
    org = world.org_id
    ada, bob = world.student_ids
    api.call(
        "POST",
        f"/orgs/{org}/allocations",
        token=world.owner,
        json={"member_ids": "all", "amount": "10"},
    )
    for member in (ada, bob):
        charged = api.call(
            "POST",
            f"/orgs/{org}/members/{member}/usage",
            token=world.usage_key,
            json={"amount": "1", "metrics": {"frames": 24}},
        )
        assert charged.status_code == 201, charged.text
    push_to_the_limit(app_uow, world)
    before = api.call("GET", f"/orgs/{org}/members/{ada}", token=world.owner).json()

    # Each change that would pass a limit is refused whole.
    problem(
        api.call(
            "POST", f"/orgs/{org}/members/{ada}/usage", token=world.usage_key, json={"amount": "1"}
        ),
        409,
        "limit_exceeded",
    )
    problem(
        api.call(
            "POST",
            f"/orgs/{org}/members/{bob}/usage",
            token=world.usage_key,
            json={"amount": "1", "metrics": {"frames": 2}},
        ),
        409,
        "limit_exceeded",
    )
    problem(
        api.call("POST", f"/orgs/{org}/purchases", token=OPERATOR_KEY, json={"amount": "1"}),
        409,
        "limit_exceeded",
    )
    problem(
        api.call(
            "POST",
            f"/orgs/{org}/allocations",
            token=world.owner,
            json={"member_ids": [ada], "amount": "1"},
        ),
        409,
        "limit_exceeded",
    )
    batch = api.call(
        "POST",
        f"/orgs/{org}/usage",
        token=world.usage_key,
        json={"events": [{"key": "k1", "member_id": ada, "amount": "1"}]},
    )
    assert batch.status_code == 200, batch.text
    assert batch.json()["results"][0] == {
        "key": "k1",
        "status": 409,
        "code": "limit_exceeded",
        "transfer_id": None,
    }
    assert api.call("GET", f"/orgs/{org}/members/{ada}", token=world.owner).json() == before

    # Every API read of the org answers, with exact figures past 2^63.
    shown = api.call("GET", f"/orgs/{org}", token=world.owner)
    readable(shown, "GET /orgs/{org}")
    assert shown.json()["usage"]["frames"] == 2 * (MAX_TOTAL - 1)
    for path, token in (
        (f"/orgs/{org}/balance", world.owner),
        (f"/orgs/{org}/transfers", world.owner),
        (f"/orgs/{org}/members", world.owner),
        (f"/orgs/{org}/members/{ada}", world.owner),
        (f"/orgs/{org}/members/{ada}/access", world.usage_key),
        (f"/orgs/{org}/reset", world.owner),
        ("/orgs", world.owner),
        ("/me", world.students[0]),
    ):
        readable(api.call("GET", path, token=token), f"GET {path}")
    assert (
        api.call("GET", f"/orgs/{org}/members/{ada}", token=world.owner).json()["credits_used"]
        == "9223372036854.775806"
    )

    # Every page of the org, of the member and of the operator answers.
    operator_email = email_of(api, world.owner)
    users.grant_operator(app_uow, operator_email)
    sign_in(api, operator_email)
    for page in (
        f"/orgs/{org}",
        f"/orgs/{org}/ledger",
        f"/orgs/{org}/members.csv",
        f"/orgs/{org}/transfers.csv",
        f"/orgs/{org}/reset",
        "/me",
        "/operator",
    ):
        readable(api.client.get(page), page)
    api.client.cookies.clear()
    sign_in(api, email_of(api, world.students[0]))
    readable(api.client.get("/me"), "/me as Ada")

    # The audit reads the same books and names what is wrong with them, without failing.
    report = audit.audit(app_uow, org)
    assert not report.clean
    # Bob's wallet got 10 credits, spent 1, and the two huge transfers: summed exactly.
    exact = f"{wallet_account(bob)} has balance 9000000 but its transfers sum to " + str(
        2 * HUGE_TRANSFER + 9_000_000
    )
    assert any(exact in breach for breach in report.breaches), report.breaches


def test_the_pools_history_sums_each_batch_exactly(
    api: Api, world: World, app_uow: UnitOfWork
) -> None:
    push_to_the_limit(app_uow, world)
    points = reports.pool_history(app_uow, world.org_id).points
    # 100 credits bought, none allotted yet, then the batch of two huge transfers out.
    assert [point.balance for point in points] == [100_000_000, 100_000_000 - 2 * HUGE_TRANSFER]
