"""The audit, idempotency keys and the schema itself, on both engines.

The audit tests break the books on purpose, with direct writes inside the test's rolled-back
transaction, and check that the report names each breach.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import CheckConstraint, Engine, insert, inspect, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.expression import Executable

from creditpool.domain.amounts import credits
from creditpool.domain.errors import IdempotencyMismatch, InvalidInput
from creditpool.domain.model import AccountKind, HoldStatus, Role, Seat, TransferKind
from creditpool.domain.policies import SettingsChange
from creditpool.services import credits as credit_service
from creditpool.services import groups, holds, members, orgs, reports, usage
from creditpool.services.audit import AuditReport, audit
from creditpool.services.ledger import wallet_account
from creditpool.services.targets import Target
from creditpool.storage.ids import new_id
from creditpool.storage.schema import Account, Base, Hold, Member, Org, Transfer, UsageTotal
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.clock import FakeClock
from tests.support.factories import OPERATOR, add_members, make_org

USAGE_KEY = "apikey:test"


@dataclass(frozen=True)
class Books:
    """An org after a day of varied business; `holder` still has 3 credits on hold."""

    org_id: str
    user: str  # a student with usage metrics
    holder: str


def keep_books(uow: UnitOfWork, clock: FakeClock) -> Books:
    """Purchases, allotments, usage, holds, revocation, metering, seat changes, a removal."""
    org = make_org(uow, purchase="100", settings=SettingsChange(rate_licensed=credits("365")))
    user, holder, leaver = add_members(uow, org.id, 3)
    (_manager,) = add_members(uow, org.id, 1, role=Role.MANAGER, seat=Seat.UNLICENSED)
    group = groups.create_group(uow, org.id, "Class", actor=OPERATOR)
    groups.set_group_members(uow, org.id, group.id, [user.id, holder.id, leaver.id])
    credit_service.allocate_credits(
        uow, org.id, Target.group(group.id), credits("10"), actor=OPERATOR
    )
    usage.charge_usage(
        uow, org.id, user.id, credits("1.5"), metrics={"renders": 1, "frames": 240}, actor=USAGE_KEY
    )
    captured = holds.place_hold(uow, org.id, user.id, credits("4"), actor=USAGE_KEY)
    holds.capture_hold(
        uow, org.id, captured.id, credits("2.25"), metrics={"frames": 60}, actor=USAGE_KEY
    )
    voided = holds.place_hold(uow, org.id, holder.id, credits("1"), actor=USAGE_KEY)
    holds.void_hold(uow, org.id, voided.id, actor=USAGE_KEY)
    holds.place_hold(uow, org.id, holder.id, credits("3"), actor=USAGE_KEY)
    credit_service.revoke_credits(
        uow, org.id, Target.members([holder.id]), credits("2"), actor=OPERATOR
    )
    clock.advance(days=1)
    members.change_member(uow, org.id, leaver.id, seat=Seat.EXTERNAL, actor=OPERATOR)
    members.remove_member(uow, org.id, leaver.id, actor=OPERATOR)
    orgs.update_settings(
        uow,
        org.id,
        SettingsChange(auto_enabled=True, auto_max_per_member=credits("10")),
        actor=OPERATOR,
    )
    # 6.25 left; 8 more needs one bundle of 5.
    topped = usage.charge_usage(uow, org.id, user.id, credits("8"), actor=USAGE_KEY)
    assert topped.auto_allocated == credits("5")
    clock.advance(hours=6)
    credit_service.record_purchase(uow, org.id, credits("20"), actor=OPERATOR)
    orgs.set_paused(uow, org.id, paused=True, actor=OPERATOR)
    return Books(org.id, user.id, holder.id)


def breaches_naming(report: AuditReport, *words: str) -> list[str]:
    return [breach for breach in report.breaches if all(word in breach for word in words)]


def corrupt(uow: UnitOfWork, statement: Executable) -> None:
    """Write past the services, inside the test's transaction (rolled back at its end)."""
    with uow:
        uow.session.execute(statement)
        uow.commit()


# The audit


def test_the_books_are_clean_after_a_mix_of_operations(uow: UnitOfWork, clock: FakeClock) -> None:
    books = keep_books(uow, clock)

    # Scoped to the org: tests elsewhere may commit rows of their own to the shared database.
    report = audit(uow, books.org_id)

    assert report.breaches == []
    assert report.clean
    # The mix did reach the ledger: metering, automatic allotment, captured usage.
    kinds = {t.kind for t in reports.list_transfers(uow, books.org_id, limit=500)}
    assert {TransferKind.METERING, TransferKind.AUTO_ALLOCATION, TransferKind.USAGE} <= kinds


def test_the_audit_finds_a_balance_not_backed_by_transfers(
    uow: UnitOfWork, clock: FakeClock
) -> None:
    books = keep_books(uow, clock)
    # One credit appears in the pool and vanishes from purchases: the sum stays zero.
    for account, delta in ((AccountKind.POOL, 1), (AccountKind.PURCHASES, -1)):
        corrupt(
            uow,
            update(Account)
            .where(Account.org_id == books.org_id, Account.id == account)
            .values(balance=Account.balance + delta),
        )

    report = audit(uow, books.org_id)

    assert breaches_naming(report, books.org_id, "account pool", "transfers sum")
    assert breaches_naming(report, books.org_id, "account purchases", "transfers sum")
    assert not breaches_naming(report, "not 0")


def test_the_audit_finds_balances_not_summing_to_zero(uow: UnitOfWork, clock: FakeClock) -> None:
    books = keep_books(uow, clock)
    corrupt(
        uow,
        update(Account)
        .where(Account.org_id == books.org_id, Account.id == wallet_account(books.user))
        .values(balance=Account.balance + 7),
    )

    report = audit(uow, books.org_id)

    assert breaches_naming(report, books.org_id, "balances sum to 7, not 0")


def test_the_audit_finds_a_running_total_differing_from_transfers(
    uow: UnitOfWork, clock: FakeClock
) -> None:
    books = keep_books(uow, clock)
    corrupt(
        uow,
        update(Member)
        .where(Member.org_id == books.org_id, Member.id == books.user)
        .values(used_total=Member.used_total + 1),
    )

    report = audit(uow, books.org_id)

    assert len(report.breaches) == 1
    assert breaches_naming(report, books.user, "used")


def test_the_audit_finds_usage_totals_differing_from_transfer_metrics(
    uow: UnitOfWork, clock: FakeClock
) -> None:
    books = keep_books(uow, clock)
    corrupt(
        uow,
        update(UsageTotal)
        .where(
            UsageTotal.org_id == books.org_id,
            UsageTotal.member_id == books.user,
            UsageTotal.metric == "frames",
        )
        .values(total=UsageTotal.total + 1),
    )

    report = audit(uow, books.org_id)

    assert len(report.breaches) == 1
    assert breaches_naming(report, books.user, "usage totals")


def test_the_audit_finds_held_credits_differing_from_pending_holds(
    uow: UnitOfWork, clock: FakeClock
) -> None:
    books = keep_books(uow, clock)
    # The hold closes but the wallet still reserves its 3 credits.
    corrupt(
        uow,
        update(Hold)
        .where(
            Hold.org_id == books.org_id,
            Hold.member_id == books.holder,
            Hold.status == HoldStatus.PENDING,
        )
        .values(status=HoldStatus.VOIDED),
    )

    report = audit(uow, books.org_id)

    # Found twice: by the wallet's held credits, and by its lot's.
    assert len(report.breaches) == 2
    assert breaches_naming(report, wallet_account(books.holder), f"holds {credits('3')}")
    assert breaches_naming(report, wallet_account(books.holder), "pending holds keep 0")


def test_the_audit_finds_seat_counts_differing_from_active_members(
    uow: UnitOfWork, clock: FakeClock
) -> None:
    books = keep_books(uow, clock)
    sound = make_org(uow, name="Sound books")
    corrupt(
        uow,
        update(Org).where(Org.id == books.org_id).values(unlicensed_seats=Org.unlicensed_seats + 1),
    )

    report = audit(uow, books.org_id)

    # Only the manager holds an unlicensed seat; the org now counts 2.
    assert len(report.breaches) == 1
    assert breaches_naming(report, books.org_id, "2 unlicensed")
    assert breaches_naming(audit(uow), books.org_id, "2 unlicensed")
    assert audit(uow, sound.id).clean


# Idempotency


def purchase(uow: UnitOfWork, org_id: str, amount: str, *, actor: str, idempotency_key: str) -> str:
    """Record a purchase under a key and return its transfer id."""
    return credit_service.record_purchase(
        uow, org_id, credits(amount), actor=actor, idempotency_key=idempotency_key
    ).id


def purchased(uow: UnitOfWork, org_id: str) -> int:
    return reports.get_balance(uow, org_id).purchased


def test_a_replay_returns_the_first_result_and_changes_nothing(uow: UnitOfWork) -> None:
    org = make_org(uow, purchase="10")
    (student,) = add_members(uow, org.id, 1)
    first = credit_service.allocate_credits(
        uow,
        org.id,
        Target.members([student.id]),
        credits("4"),
        actor=OPERATOR,
        idempotency_key="a1",
    )

    again = credit_service.allocate_credits(
        uow,
        org.id,
        Target.members([student.id]),
        credits("4"),
        actor=OPERATOR,
        idempotency_key="a1",
    )

    assert again == first
    assert reports.get_balance(uow, org.id).available == credits("6")
    assert members.get_member(uow, org.id, student.id).credits_balance == credits("4")
    assert len(reports.list_transfers(uow, org.id, member_id=student.id)) == 1


def test_the_same_key_with_other_arguments_is_refused(uow: UnitOfWork) -> None:
    org = make_org(uow)
    purchase(uow, org.id, "10", actor=OPERATOR, idempotency_key="p1")

    with pytest.raises(IdempotencyMismatch):
        purchase(uow, org.id, "11", actor=OPERATOR, idempotency_key="p1")

    assert purchased(uow, org.id) == credits("10")


def test_keys_belong_to_one_actor_and_one_org(uow: UnitOfWork) -> None:
    org, other = make_org(uow), make_org(uow)
    first = purchase(uow, org.id, "10", actor=OPERATOR, idempotency_key="p1")

    by_another_actor = purchase(uow, org.id, "10", actor="operator:other", idempotency_key="p1")
    in_another_org = purchase(uow, other.id, "10", actor=OPERATOR, idempotency_key="p1")

    assert len({first, by_another_actor, in_another_org}) == 3
    assert (purchased(uow, org.id), purchased(uow, other.id)) == (credits("20"), credits("10"))


def test_a_key_is_free_again_after_24_hours(uow: UnitOfWork, clock: FakeClock) -> None:
    org = make_org(uow)
    first = purchase(uow, org.id, "10", actor=OPERATOR, idempotency_key="p1")

    clock.advance(hours=23, minutes=59)
    assert purchase(uow, org.id, "10", actor=OPERATOR, idempotency_key="p1") == first
    clock.advance(minutes=1, seconds=1)
    # Past the window the key is a new request, even with other arguments.
    later = purchase(uow, org.id, "5", actor=OPERATOR, idempotency_key="p1")

    assert later != first
    assert purchased(uow, org.id) == credits("15")


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("k" * 256, id="256-characters"),
        pytest.param("", id="empty"),
        pytest.param("tab\tand\x7f", id="control-characters"),
    ],
)
def test_a_malformed_key_is_refused_before_anything_moves(uow: UnitOfWork, key: str) -> None:
    org = make_org(uow)

    with pytest.raises(InvalidInput) as refused:
        purchase(uow, org.id, "10", actor=OPERATOR, idempotency_key=key)

    assert refused.value.code == "validation_error"
    assert purchased(uow, org.id) == 0


def test_a_key_of_255_printable_characters_is_accepted(uow: UnitOfWork) -> None:
    org = make_org(uow)
    key = "~ Az09!" * 36 + "abc"  # 7 * 36 + 3 = 255

    first = purchase(uow, org.id, "10", actor=OPERATOR, idempotency_key=key)

    assert purchase(uow, org.id, "10", actor=OPERATOR, idempotency_key=key) == first
    assert purchased(uow, org.id) == credits("10")


# The schema


def test_the_migrations_build_exactly_the_schema_the_models_describe(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        differences = compare_metadata(context, Base.metadata)
        inspector = inspect(connection)
        # Autogenerate does not compare CHECK constraints: compare their names directly.
        in_database = {
            table: {check["name"] for check in inspector.get_check_constraints(table)}
            for table in Base.metadata.tables
        }

    assert differences == []
    in_models = {
        table.name: {
            str(constraint.name)
            for constraint in table.constraints
            if isinstance(constraint, CheckConstraint)
        }
        for table in Base.metadata.tables.values()
    }
    assert in_database == in_models


def test_the_schema_refuses_a_negative_wallet(uow: UnitOfWork) -> None:
    org = make_org(uow)
    (student,) = add_members(uow, org.id, 1)

    with uow, pytest.raises(IntegrityError) as refused:
        uow.session.execute(
            update(Account)
            .where(Account.org_id == org.id, Account.id == wallet_account(student.id))
            .values(balance=-1)
        )

    assert "not_overdrawn" in str(refused.value)
    assert members.get_member(uow, org.id, student.id).credits_balance == 0


def test_the_schema_refuses_a_zero_amount_transfer(uow: UnitOfWork) -> None:
    org = make_org(uow)  # its pool and purchases accounts exist: only the amount is wrong

    with uow, pytest.raises(IntegrityError) as refused:
        uow.session.execute(
            insert(Transfer).values(
                org_id=org.id,
                id=new_id("trf"),
                batch_id=new_id("bat"),
                kind=TransferKind.PURCHASE,
                debit_account_id=AccountKind.PURCHASES,
                credit_account_id=AccountKind.POOL,
                amount=0,
                actor=OPERATOR,
                created_at=uow.now,
            )
        )

    assert "amount_positive" in str(refused.value)
    assert reports.list_transfers(uow, org.id) == []
