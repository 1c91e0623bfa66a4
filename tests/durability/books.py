"""What the database holds after the crashes, held against what the clients were told."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from sqlalchemy import Engine, select

from creditpool.domain.model import AccountKind, TransferKind
from creditpool.storage.schema import Account, Transfer
from tests.durability.load import ALLOT, REVOKE, USAGE, Answer, Outcome

SHOWN = 10  # offending writes listed in a failure message


@dataclass(frozen=True)
class Books:
    """An org's ledger at one moment: which transfers exist, and its pool's and wallets'
    balances (micro-credits, by member id)."""

    transfer_ids: frozenset[str]
    pool: int
    wallets: dict[str, int]


def read_books(engine: Engine, org_id: str) -> Books:
    """Read an org's transfers and balances straight from the database."""
    with engine.connect() as connection:
        ids = connection.scalars(select(Transfer.id).where(Transfer.org_id == org_id))
        accounts = connection.execute(
            select(Account.kind, Account.member_id, Account.balance).where(
                Account.org_id == org_id,
                Account.kind.in_([AccountKind.POOL, AccountKind.WALLET]),
            )
        ).all()
        transfer_ids = frozenset(ids)
    pool = [balance for kind, _, balance in accounts if kind == AccountKind.POOL]
    wallets = {
        str(member): balance for kind, member, balance in accounts if kind == AccountKind.WALLET
    }
    return Books(transfer_ids, pool[0], wallets)


def _listed(outcomes: list[Outcome]) -> str:
    return "\n".join(outcome.describe() for outcome in outcomes[:SHOWN])


def assert_every_write_settled_as_applied(outcomes: list[Outcome]) -> None:
    """Every write ended with 201: the org has credits to spare, so nothing may be refused."""
    refused = [o for o in outcomes if o.final is None or o.final.status != 201]
    assert not refused, f"{len(refused)} writes did not end with 201:\n{_listed(refused)}"


def assert_each_write_in_the_ledger_once(
    engine: Engine, org_id: str, before: Books, outcomes: list[Outcome]
) -> None:
    """Each acknowledged write is in the ledger exactly once, as its answer named it, and
    nothing else is: no key applied twice, no write lost, no stray transfer."""
    with engine.connect() as connection:
        transfers = [
            row
            for row in connection.execute(
                select(
                    Transfer.id,
                    Transfer.batch_id,
                    Transfer.kind,
                    Transfer.member_id,
                    Transfer.amount,
                    Transfer.reference,
                ).where(Transfer.org_id == org_id)
            )
            if row.id not in before.transfer_ids
        ]
    strays = [row for row in transfers if row.kind not in _KINDS.values()]
    assert not strays, f"transfers no client asked for: {strays[:SHOWN]}"

    # Usage carries its request's key as reference: one charge per key, the one answered.
    charged = Counter(row.reference for row in transfers if row.kind == TransferKind.USAGE)
    twice = sorted(str(reference) for reference, count in charged.items() if count > 1)
    assert not twice, f"usage applied more than once for keys {twice[:SHOWN]}"
    for kind, ledger_kind in _KINDS.items():
        answered = {o.identity(): o for o in outcomes if o.write.kind == kind}
        found: dict[str, list[tuple[str, str | None, int, str | None]]] = defaultdict(list)
        for row in transfers:
            if row.kind == ledger_kind:
                made = row.id if kind == USAGE else row.batch_id
                found[made].append((row.id, row.member_id, row.amount, row.reference))
        lost = [o for made, o in answered.items() if made not in found]
        assert not lost, f"acknowledged {kind} writes missing from the ledger:\n{_listed(lost)}"
        extra = {made: rows for made, rows in found.items() if made not in answered}
        assert not extra, (
            f"{len(extra)} {kind} batches in the ledger that no answer named (a key applied "
            f"twice, or a write applied though refused): {list(extra.items())[:SHOWN]}"
        )
        for made, outcome in answered.items():
            write = outcome.write
            rows = found[str(made)]
            expected = write.key if kind == USAGE else None
            assert [(member, amount, reference) for _, member, amount, reference in rows] == [
                (write.member_id, write.amount, expected)
            ], f"{kind} {write.key} is in the ledger as {rows}"


_KINDS = {
    USAGE: TransferKind.USAGE,
    ALLOT: TransferKind.ALLOCATION,
    REVOKE: TransferKind.REVOCATION,
}


def assert_balances_follow_the_answers(
    before: Books, after: Books, outcomes: list[Outcome]
) -> None:
    """The pool and each wallet stand exactly where the acknowledged writes put them."""
    pool, wallets = before.pool, dict(before.wallets)
    for outcome in outcomes:
        if outcome.identity() is None:
            continue  # refused: it moved nothing
        write = outcome.write
        if write.kind == USAGE:
            wallets[write.member_id] -= write.amount
        elif write.kind == ALLOT:
            wallets[write.member_id] += write.amount
            pool -= write.amount
        else:
            wallets[write.member_id] -= write.amount
            pool += write.amount
    assert (after.pool, after.wallets) == (pool, wallets), (
        "balances differ from what the acknowledged writes add up to: "
        f"pool {after.pool} (expected {pool}), wallets {after.wallets} (expected {wallets})"
    )


def assert_nothing_overdrawn(engine: Engine) -> None:
    """No pool or wallet of any org is below zero, or holds more than it has."""
    with engine.connect() as connection:
        overdrawn = connection.execute(
            select(Account.org_id, Account.id, Account.balance, Account.held).where(
                Account.kind.in_([AccountKind.POOL, AccountKind.WALLET]),
                (Account.balance < 0) | (Account.held > Account.balance),
            )
        ).all()
    assert not overdrawn, f"overdrawn accounts: {overdrawn}"


def assert_replays_answer_the_same(replays: list[tuple[Outcome, Answer]]) -> None:
    """Sent again with its key, every write answers its first result and is marked a replay."""
    wrong = [
        f"{outcome.describe()}; replayed: {again.describe()}"
        for outcome, again in replays
        if again.status != 201
        or again.headers.get("idempotent-replayed") != "true"
        or Outcome(outcome.write, [again]).identity() != outcome.identity()
    ]
    assert not wrong, f"{len(wrong)} replays differ from the first result:\n" + "\n".join(
        wrong[:SHOWN]
    )
