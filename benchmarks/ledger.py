"""Benchmarks of the ledger, printed as figures beside a baseline measured in the same run.

    scripts/bench            (or: python -m benchmarks.ledger)

On a throwaway PostgreSQL cluster (or CREDITPOOL_TEST_POSTGRES_URL) and on a SQLite file:
- baseline: pgbench's simple-update transaction (TPC-B-like, -N) on the same cluster, 1 and 8
  clients, so the usage figures can be read against what this machine's PostgreSQL does;
- usage charges a second, 1 and 8 threads, each charge one transaction (debit the wallet,
  credit the usage account, insert the transfer, update the member's totals and metrics);
- one allocation to 10,000 members (one transaction), and the reset that returns it all;
- reading the balance with 10 seats and with 10,000 (it should not depend on the count).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, insert
from tests.support.postgres import throwaway_cluster

from creditpool.domain.amounts import credits
from creditpool.domain.model import AccountKind, MemberStatus, Role, Seat
from creditpool.domain.policies import SettingsChange
from creditpool.services import credits as pool
from creditpool.services import orgs, reports, resets, usage, users
from creditpool.services.targets import Target
from creditpool.storage.database import create_database_engine
from creditpool.storage.ids import new_id
from creditpool.storage.migrate import upgrade
from creditpool.storage.schema import Account, Member, Org, User
from creditpool.storage.unit_of_work import UnitOfWork

SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
MEMBERS = int(os.environ.get("BENCH_MEMBERS", "10000"))
THREADS = 8


@dataclass
class Figure:
    engine: str
    what: str
    value: float
    unit: str


def seed_org(engine: Engine, members: int, *, name: str) -> tuple[str, list[str]]:
    """Open an org with `members` students and 1,000,000 credits; rows written in bulk."""
    uow = UnitOfWork.for_engine(engine)
    owner = users.create_user(uow, email=f"owner-{new_id('x')}@bench.test", name="Owner")
    rates = SettingsChange(rate_licensed=credits("1"))
    org = orgs.create_org(uow, name=name, owner_user_id=owner.id, settings=rates, actor="bench")
    pool.record_purchase(uow, org.id, credits("1000000"), actor="bench")
    ids = [new_id("mem") for _ in range(members)]
    with uow:
        now = uow.now
        user_rows = [
            {
                "id": f"usr_{i}",
                "email": f"{i}@bench.test",
                "name": "Student",
                "created_at": now,
                "is_operator": False,
            }
            for i in ids
        ]
        member_rows = [
            {
                "org_id": org.id,
                "id": i,
                "user_id": f"usr_{i}",
                "role": Role.MEMBER,
                "seat": Seat.LICENSED,
                "status": MemberStatus.ACTIVE,
                "allocated_total": 0,
                "auto_allocated_total": 0,
                "used_total": 0,
                "joined_at": now,
            }
            for i in ids
        ]
        wallet_rows = [
            {
                "org_id": org.id,
                "id": f"wallet:{i}",
                "kind": AccountKind.WALLET,
                "member_id": i,
                "balance": 0,
                "held": 0,
            }
            for i in ids
        ]
        for table, rows in ((User, user_rows), (Member, member_rows), (Account, wallet_rows)):
            for start in range(0, len(rows), 2000):
                uow.session.execute(insert(table), rows[start : start + 2000])
        row = uow.session.get(Org, org.id)
        assert row is not None
        row.licensed_seats += members
        uow.commit()
    return org.id, ids


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def usage_rate(engine: Engine, org_id: str, member_ids: list[str], threads: int) -> float:
    """Charges a second with `threads` threads, each on its own members, for SECONDS."""
    done = [0] * threads
    deadline = time.perf_counter() + SECONDS

    def work(number: int) -> None:
        uow = UnitOfWork.for_engine(engine)
        mine = member_ids[number::threads]
        index = 0
        while time.perf_counter() < deadline:
            usage.charge_usage(
                uow,
                org_id,
                mine[index % len(mine)],
                credits("0.01"),
                metrics={"renders": 1, "frames": 24},
                actor="bench",
            )
            done[number] += 1
            index += 1

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(done) / (time.perf_counter() - started)


def pgbench_tps(url: str, clients: int, *, seconds: float = SECONDS) -> float:
    """TPS of pgbench's simple-update script on the same cluster."""
    match = re.match(r".*://(?P<user>[^@]+)@(?P<host>[^:/]+):(?P<port>\d+)/(?P<db>\w+)", url)
    assert match is not None
    pgbench = shutil.which("pgbench") or "/usr/lib/postgresql/15/bin/pgbench"
    target = ["-h", match["host"], "-p", match["port"], "-U", match["user"], match["db"]]
    subprocess.run([pgbench, "-i", "-s", "1", "-q", *target], check=True, capture_output=True)
    result = subprocess.run(
        [
            pgbench,
            "-N",
            "-c",
            str(clients),
            "-j",
            str(min(clients, 2)),
            "-T",
            str(int(seconds)),
            *target,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    found = re.search(r"tps = ([0-9.]+)", result.stdout)
    assert found is not None, result.stdout
    return float(found[1])


def measure(engine_name: str, engine: Engine, url: str) -> list[Figure]:
    figures: list[Figure] = []
    uow = UnitOfWork.for_engine(engine)
    if engine_name == "postgresql":
        for clients in (1, THREADS):
            figures.append(
                Figure(
                    engine_name,
                    f"baseline: pgbench -N, {clients} client(s)",
                    pgbench_tps(url, clients),
                    "tps",
                )
            )
    small_org, small = seed_org(engine, 10, name="ten seats")
    big_org, _ = seed_org(engine, MEMBERS, name="many seats")
    figures.append(
        Figure(
            engine_name,
            f"allot 1 credit to each of {MEMBERS:,} members (one batch)",
            timed(
                lambda: pool.allocate_credits(
                    uow, big_org, Target.all_students(), credits("1"), actor="bench"
                )
            ),
            "s",
        )
    )
    runs = 200
    for org_id, count in ((small_org, 10), (big_org, MEMBERS)):
        seconds = timed(
            lambda org_id=org_id: [reports.get_balance(uow, org_id) for _ in range(runs)]
        )
        figures.append(
            Figure(
                engine_name,
                f"read the balance, {count:,} metered seats",
                seconds / runs * 1000,
                "ms",
            )
        )
    pool.allocate_credits(uow, small_org, Target.all_students(), credits("1000"), actor="bench")
    thread_counts = (1, THREADS) if engine_name == "postgresql" else (1, 4)
    for threads in thread_counts:
        figures.append(
            Figure(
                engine_name,
                f"charge usage, {threads} thread(s)",
                usage_rate(engine, small_org, small, threads),
                "charges/s",
            )
        )
    figures.append(
        Figure(
            engine_name,
            f"reset: remove {MEMBERS:,} students, return credits",
            timed(lambda: resets.reset_org(uow, big_org, actor="bench")),
            "s",
        )
    )
    return figures


def main() -> None:
    figures: list[Figure] = []
    with ExitStack() as stack:
        url = os.environ.get("CREDITPOOL_TEST_POSTGRES_URL") or stack.enter_context(
            throwaway_cluster()
        )
        upgrade(url)
        engine = create_database_engine(url, pool_size=THREADS + 2)
        figures += measure("postgresql", engine, url)
        engine.dispose()
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        sqlite_url = f"sqlite:///{folder / 'bench.db'}"
        upgrade(sqlite_url)
        sqlite = create_database_engine(sqlite_url)
        figures += measure("sqlite", sqlite, sqlite_url)
        sqlite.dispose()
    width = max(len(f.what) for f in figures)
    print(f"{'engine':<11} {'measure':<{width}} {'value':>12}")
    for figure in figures:
        print(f"{figure.engine:<11} {figure.what:<{width}} {figure.value:>12,.2f} {figure.unit}")


if __name__ == "__main__":
    main()
