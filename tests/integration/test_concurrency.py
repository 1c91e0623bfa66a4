"""Concurrency is shown, not assumed: real threads race real commits against one org.

On PostgreSQL, eight threads allot, revoke, charge usage (topped up automatically) and place,
capture and void holds on one small org for a few seconds. The pool and wallets are small on
purpose, so many requests are refused. Afterwards nothing is negative, nothing is overspent,
the audit is clean, and every success the threads saw is one transfer in the ledger, of its
kind and amount, while every refusal left nothing behind. The only acceptable failure in a
thread is a domain error (InsufficientCredits and its kin); a deadlock or a serialization
failure reaching the caller fails the test.

These tests commit for real, so they open their own engine and a fresh org (with e-mails unique
across runs): other tests see only an extra tenant, which tenant isolation keeps apart.

On SQLite, four threads write at once: BEGIN IMMEDIATE and the busy timeout make each writer
wait for the lock instead of failing with "database is locked".
"""

from __future__ import annotations

import random
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import Engine

from creditpool.domain.amounts import credits
from creditpool.domain.errors import CreditpoolError
from creditpool.domain.model import MemberStatus, Role, Seat, TransferKind
from creditpool.domain.policies import SettingsChange
from creditpool.services import audit, holds, members, orgs, reports, usage, usage_batch
from creditpool.services import credits as credit_service
from creditpool.services.targets import Target
from creditpool.services.views import MemberView, OrgView
from creditpool.storage.database import create_database_engine
from creditpool.storage.migrate import upgrade
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.factories import OPERATOR, make_user
from tests.support.racing import race

THREADS = 8
RACE_SECONDS = 3.0
MAX_OPERATIONS_PER_THREAD = 400
MACHINE = "api-key:race"
KINDS = (
    TransferKind.ALLOCATION,
    TransferKind.AUTO_ALLOCATION,
    TransferKind.REVOCATION,
    TransferKind.USAGE,
)


@dataclass
class Tally:
    """What one thread saw: transfers it caused by kind (count and micro-credits), refusals."""

    transfers: Counter[str] = field(default_factory=Counter)
    amounts: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)

    def moved(self, kind: TransferKind, amount: int, count: int = 1) -> None:
        self.transfers[kind] += count
        self.amounts[kind] += amount

    def merge(self, other: Tally) -> None:
        self.transfers += other.transfers
        self.amounts += other.amounts
        self.refused += other.refused
        self.unexpected += other.unexpected


def unique_email() -> str:
    return f"race-{uuid.uuid4().hex}@example.test"


def open_org(uow: UnitOfWork, *, purchase: str, settings: SettingsChange | None = None) -> OrgView:
    owner = make_user(uow, "Owner", email=unique_email())
    org = orgs.create_org(
        uow, name="Race", owner_user_id=owner.id, settings=settings, actor=OPERATOR
    )
    credit_service.record_purchase(uow, org.id, credits(purchase), actor=OPERATOR)
    return org


def join(uow: UnitOfWork, org_id: str, count: int) -> list[MemberView]:
    return [
        members.add_member(
            uow,
            org_id,
            user_id=make_user(uow, email=unique_email()).id,
            role=Role.MEMBER,
            seat=Seat.LICENSED,
            actor=OPERATOR,
        )
        for _ in range(count)
    ]


def every_transfer(uow: UnitOfWork, org_id: str, kind: TransferKind) -> Iterator[int]:
    """Yield the amount of every transfer of a kind, page by page."""
    before = None
    while True:
        page = reports.list_transfers(uow, org_id, kind=kind, before=before, limit=500)
        yield from (t.amount for t in page)
        if len(page) < 500:
            return
        before = page[-1].id


def ledger_by_kind(uow: UnitOfWork, org_id: str) -> tuple[Counter[str], Counter[str]]:
    """Return the count and the sum of the org's transfers of each kind."""
    counts: Counter[str] = Counter()
    sums: Counter[str] = Counter()
    for kind in KINDS:
        for amount in every_transfer(uow, org_id, kind):
            counts[kind] += 1
            sums[kind] += amount
    return counts, sums


def describe(operation: str, error: Exception) -> str:
    """One paragraph for a failure: the operation, the error, where in src it surfaced."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if "/creditpool/" in f.filename]
    where = " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(frames))
    return f"{operation}: {type(error).__name__}: {str(error).splitlines()[0]}\n  at {where}"


@pytest.fixture
def pg_engine(postgresql_url: str) -> Iterator[Engine]:
    """An engine with a connection for every racing thread, and one to spare."""
    engine = create_database_engine(postgresql_url, pool_size=THREADS + 2, max_overflow=2)
    yield engine
    engine.dispose()


@pytest.mark.postgres_only
def test_racing_threads_never_overspend_on_postgresql(pg_engine: Engine) -> None:
    setup = UnitOfWork.for_engine(pg_engine)
    # Automatic allocation in bundles of 1 up to 10 per member. Six students: the first three
    # use up their automatic allowance before the race (3 x 10 = 30 of the 60 bought), so their
    # holds can never trigger a bundle and each top-up the race sees is reported by the usage
    # call that caused it. The pool starts the race with 60 - 30 = 30 credits.
    org = open_org(
        setup,
        purchase="60",
        settings=SettingsChange(
            auto_enabled=True, auto_bundle=credits("1"), auto_max_per_member=credits("10")
        ),
    )
    students = join(setup, org.id, 6)
    capped = students[:3]
    for student in capped:
        spent = usage.charge_usage(setup, org.id, student.id, credits("10"), actor=MACHINE)
        assert spent.member.auto_allocated == credits("10")
    assert reports.get_balance(setup, org.id).available == credits("30")
    counts_before, sums_before = ledger_by_kind(setup, org.id)

    deadline = time.monotonic() + RACE_SECONDS
    tallies = [Tally() for _ in range(THREADS)]

    def worker(number: int) -> Callable[[], None]:
        uow = UnitOfWork.for_engine(pg_engine)
        rng = random.Random(number)  # a reproducible mix of operations
        tally = tallies[number]

        def allot() -> None:
            chosen = rng.sample(students, rng.randint(1, 3))
            amount = credits(rng.choice(["0.5", "1", "2", "3"]))
            credit_service.allocate_credits(
                uow, org.id, Target.members([s.id for s in chosen]), amount, actor=OPERATOR
            )
            tally.moved(TransferKind.ALLOCATION, amount * len(chosen), len(chosen))

        def revoke_some() -> None:
            student = rng.choice(students)
            amount = credits(rng.choice(["0.5", "1"]))
            credit_service.revoke_credits(
                uow, org.id, Target.members([student.id]), amount, actor=OPERATOR
            )
            tally.moved(TransferKind.REVOCATION, amount)

        def revoke_all() -> None:
            student = rng.choice(students)
            result = credit_service.revoke_credits(
                uow, org.id, Target.members([student.id]), actor=OPERATOR
            )
            if result.total:  # an empty wallet gives nothing back and records no transfer
                tally.moved(TransferKind.REVOCATION, result.total)

        def spend() -> None:
            student = rng.choice(students)
            amount = credits(rng.choice(["0.5", "1", "1.5", "2.5"]))
            result = usage.charge_usage(
                uow, org.id, student.id, amount, metrics={"renders": 1}, actor=MACHINE
            )
            if result.auto_allocated:
                tally.moved(TransferKind.AUTO_ALLOCATION, result.auto_allocated)
            tally.moved(TransferKind.USAGE, amount)

        def hold_then_settle() -> None:
            student = rng.choice(capped)  # never topped up: their allowance is spent
            amount = credits(rng.choice(["0.5", "1", "2"]))
            hold = holds.place_hold(uow, org.id, student.id, amount, actor=MACHINE)
            if rng.random() < 0.5:
                holds.void_hold(uow, org.id, hold.id, actor=MACHINE)
                return
            captured = min(amount, rng.choice([credits("0.5"), amount]))  # part or all of it
            holds.capture_hold(uow, org.id, hold.id, captured, actor=MACHINE)
            tally.moved(TransferKind.USAGE, captured)

        operations = [allot, revoke_some, revoke_all, spend, spend, hold_then_settle]

        def work() -> None:
            for _ in range(MAX_OPERATIONS_PER_THREAD):
                if time.monotonic() > deadline:
                    return
                operation = rng.choice(operations)
                try:
                    operation()
                except CreditpoolError as refusal:
                    tally.refused[refusal.code] += 1
                except Exception as error:  # anything else is a failure of the service
                    tally.unexpected.append(describe(operation.__name__, error))

        return work

    race([worker(number) for number in range(THREADS)])

    seen = Tally()
    for tally in tallies:
        seen.merge(tally)
    assert seen.unexpected == [], "\n".join(sorted(set(seen.unexpected)))
    # The race was a real one: work got done and the small pool refused a good share of it.
    assert seen.transfers[TransferKind.USAGE] > 0
    assert seen.transfers[TransferKind.ALLOCATION] > 0
    assert seen.transfers[TransferKind.AUTO_ALLOCATION] > 0
    assert seen.refused["insufficient_credits"] > 0

    # Every success is one transfer of its kind and amount; no refusal left one behind.
    counts_after, sums_after = ledger_by_kind(setup, org.id)
    for kind in KINDS:
        assert counts_after[kind] - counts_before[kind] == seen.transfers[kind], kind
        assert sums_after[kind] - sums_before[kind] == seen.amounts[kind], kind

    # Nothing negative, nothing overspent, every credit accounted for.
    balance = reports.get_balance(setup, org.id)
    everyone = members.list_members(setup, org.id, status=None)
    assert balance.available >= 0
    assert all(m.credits_balance >= 0 and m.credits_available >= 0 for m in everyone)
    assert all(m.credits_held == 0 for m in everyone)  # every hold was captured or voided
    assert all(m.auto_allocated <= credits("10") for m in everyone)
    assert balance.used <= balance.purchased == credits("60")
    assert balance.available + balance.allocated + balance.used == balance.purchased
    assert sum(m.credits_balance for m in everyone) == balance.allocated
    report = audit.audit(setup, org.id)
    assert report.clean, report.breaches


def test_sqlite_writers_wait_for_each_other_instead_of_failing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'race.db'}"
    upgrade(url)
    engine = create_database_engine(url)
    try:
        setup = UnitOfWork.for_engine(engine)
        # Four students, 60 credits; each thread allots 1 credit to its own student and spends
        # it, 15 times: 4 x 15 x 2 = 120 writes, every one of which must succeed.
        rounds = 15
        org = open_org(setup, purchase="60")
        students = join(setup, org.id, 4)
        failures: list[str] = []

        def worker(student: MemberView) -> Callable[[], None]:
            uow = UnitOfWork.for_engine(engine)
            target = Target.members([student.id])

            def work() -> None:
                for _ in range(rounds):
                    try:
                        credit_service.allocate_credits(
                            uow, org.id, target, credits("1"), actor=OPERATOR
                        )
                        usage.charge_usage(uow, org.id, student.id, credits("1"), actor=MACHINE)
                    except Exception:  # "database is locked" would land here
                        failures.append(traceback.format_exc())

            return work

        race([worker(student) for student in students])

        assert failures == [], failures[0] if failures else ""
        # 4 x 15 = 60 credits allotted and used: the pool is empty, the wallets too.
        balance = reports.get_balance(setup, org.id)
        assert (balance.available, balance.allocated, balance.used) == (0, 0, credits("60"))
        assert all(
            m.credits_used == rounds * credits("1")
            for m in members.list_members(setup, org.id, status=MemberStatus.ACTIVE)
            if m.role is Role.MEMBER
        )
        report = audit.audit(setup, org.id)
        assert report.clean, report.breaches
    finally:
        engine.dispose()


@pytest.mark.postgres_only
def test_racing_batches_with_the_same_keys_charge_each_event_once(pg_engine: Engine) -> None:
    setup = UnitOfWork.for_engine(pg_engine)
    org = open_org(setup, purchase="100")
    students = join(setup, org.id, 6)
    credit_service.allocate_credits(
        setup, org.id, Target.members([s.id for s in students]), credits("10"), actor=OPERATOR
    )
    run = uuid.uuid4().hex[:8]
    events = [
        {"key": f"{run}-{number}", "member_id": student.id, "amount": "1.5"}
        for number, student in enumerate(students)
    ]
    # Half the batches send the events in reverse: their row locks cross the others'.
    batches = [events if number % 2 else events[::-1] for number in range(THREADS)]
    answers: list[list[usage_batch.UsageEventResult] | Exception] = [[] for _ in batches]

    def sender(number: int) -> Callable[[], None]:
        uow = UnitOfWork.for_engine(pg_engine)

        def send() -> None:
            try:
                answers[number] = usage_batch.charge_usage_batch(
                    uow, org.id, batches[number], actor=MACHINE
                )
            except Exception as error:
                answers[number] = error

        return send

    race([sender(number) for number in range(THREADS)])

    failures = [describe("batch", a) for a in answers if isinstance(a, Exception)]
    assert failures == []
    # Each key has one transfer, which every batch reports; all but one batch replayed it.
    transfers: dict[str | None, set[str | None]] = {}
    fresh: Counter[str | None] = Counter()
    for answer in answers:
        assert isinstance(answer, list)
        for result in answer:
            assert result.code is None, result.detail
            transfers.setdefault(result.key, set()).add(result.transfer_id)
            fresh[result.key] += not result.replayed
    assert all(len(ids) == 1 for ids in transfers.values())
    assert set(fresh.values()) == {1}
    assert sum(1 for _ in every_transfer(setup, org.id, TransferKind.USAGE)) == len(students)
    for student in students:
        assert members.get_member(setup, org.id, student.id).credits_available == credits("8.5")
    assert audit.audit(setup, org.id).clean
