"""Credits moving between the pool and the wallets: purchases, allocations, revocations.

Each call is one batch: all of its transfers commit together or none do. A batch touches the
pool once and the wallets in one statement, so allotting to 10,000 members is one short
transaction.

A batch's result lists members, as many as it touched; its idempotency record keeps only the
batch id and total, and a replay lists the members again from the request (named members) or
from the batch's transfers (every student, a group), each as it stands at the replay.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select

from creditpool.domain.amounts import MAX_MICROS, format_credits
from creditpool.domain.errors import InsufficientCredits, InvalidAmount, InvalidInput, NotReturnable
from creditpool.domain.model import DEFAULT_PRIORITY, MAX_PRIORITY, AccountKind, TransferKind
from creditpool.domain.periods import end_of_day
from creditpool.domain.text import check_plain_text
from creditpool.services import alerts, event_bodies, events, ledger, metering
from creditpool.services.ledger import chunks, wallet_account
from creditpool.services.lookups import load_org
from creditpool.services.purchasing import post_purchase
from creditpool.services.targets import Target
from creditpool.services.transactions import Compaction, run_write
from creditpool.services.views import BatchResult, TransferView, member_views
from creditpool.services.wallets import lock_expired_holds, lock_wallets, release_locked_holds
from creditpool.storage.schema import Member, Transfer, User
from creditpool.storage.unit_of_work import UnitOfWork

MAX_REFERENCE_LENGTH = 200


def check_amount(amount: int) -> None:
    """Raise InvalidAmount unless 0 < amount <= the largest amount a request may carry."""
    if not 0 < amount <= MAX_MICROS:
        raise InvalidAmount("an amount must be greater than zero and at most 1,000,000,000")


def check_reference(reference: str | None) -> None:
    """Raise InvalidInput for a reference over 200 characters or with invisible characters."""
    if reference is not None and len(reference) > MAX_REFERENCE_LENGTH:
        raise InvalidInput(f"a reference is at most {MAX_REFERENCE_LENGTH} characters")
    if reference is not None:
        check_plain_text(reference, what="a reference")


def record_purchase(
    uow: UnitOfWork,
    org_id: str,
    amount: int,
    *,
    reference: str | None = None,
    actor: str,
    idempotency_key: str | None = None,
    priority: int = DEFAULT_PRIORITY,
    expires_at: datetime | None = None,
    last_day: date | None = None,
) -> TransferView:
    """Record credits bought by the org: purchases -> pool, as a new lot spent in the order
    of its `priority` (0 to 100, lower first) and lapsing at `expires_at`, or at the end of
    `last_day` in the org's zone (credits usable "until 31 August" can be spent all that
    day); neither: never."""
    check_amount(amount)
    check_reference(reference)
    if not 0 <= priority <= MAX_PRIORITY:
        raise InvalidInput(f"a priority is a whole number from 0 to {MAX_PRIORITY}")
    if expires_at is not None and last_day is not None:
        raise InvalidInput("a purchase lapses at expires_at or after last_day, not both")

    def apply() -> TransferView:
        org = load_org(uow, org_id, lock=True)
        lapses = expires_at if last_day is None else _end_of(last_day, org.timezone)
        check_expiry(lapses, uow.now)
        return post_purchase(
            uow,
            org,
            amount,
            reference=reference,
            actor=actor,
            priority=priority,
            expires_at=lapses,
        )

    return run_write(
        uow,
        apply,
        org_id=org_id,
        actor=actor,
        key=idempotency_key,
        operation="record_purchase",
        arguments=_purchase_arguments(amount, reference, priority, expires_at, last_day),
        result_type=TransferView,
    )


# How far ahead a lot may expire: beyond this it is as good as never.
MAX_LIFETIME = timedelta(days=100 * 365)


def check_expiry(expires_at: datetime | None, now: datetime) -> None:
    """Raise InvalidInput unless a lot's expiry is after `now` and within MAX_LIFETIME."""
    if expires_at is None:
        return
    try:
        expires_at.astimezone(UTC)
    except OverflowError:
        raise InvalidInput("expires_at is too far ahead: at most 100 years") from None
    if expires_at <= now:
        raise InvalidInput("expires_at must be in the future")
    if expires_at > now + MAX_LIFETIME:
        raise InvalidInput("expires_at is too far ahead: at most 100 years")


def _end_of(day: date, timezone: str) -> datetime:
    """The instant a day of the zone ends; InvalidInput past the calendar."""
    try:
        return end_of_day(day, timezone)
    except OverflowError:
        raise InvalidInput("the last day is too far ahead: at most 100 years") from None


def _purchase_arguments(
    amount: int,
    reference: str | None,
    priority: int,
    expires_at: datetime | None,
    last_day: date | None = None,
) -> dict[str, Any]:
    """What a purchase's idempotency key stands for. A lot's terms are named only when not the
    default, so a key stored before lots existed still matches its retry."""
    arguments: dict[str, Any] = {"amount": amount, "reference": reference}
    if priority != DEFAULT_PRIORITY:
        arguments["priority"] = priority
    if expires_at is not None:
        arguments["expires_at"] = expires_at.isoformat()
    if last_day is not None:
        arguments["last_day"] = last_day.isoformat()
    return arguments


def allocate_credits(
    uow: UnitOfWork,
    org_id: str,
    target: Target,
    amount: int,
    *,
    actor: str,
    idempotency_key: str | None = None,
) -> BatchResult:
    """Give `amount` from the pool to each targeted member; all of them or none."""
    check_amount(amount)

    def apply() -> BatchResult:
        org = load_org(uow, org_id, lock=True)
        members = target.resolve(uow, org_id)
        total = amount * len(members)
        posting = ledger.Posting(uow.session, org.id, actor, uow.now)
        if total:
            metering.settle(uow, org, actor=actor, posting=posting)
        if total and (total > MAX_MICROS * 1000 or not posting.withdraw(AccountKind.POOL, total)):
            available = metering.pool_balance(uow, org_id)
            raise InsufficientCredits(
                f"the pool has {format_credits(available)} available; "
                f"{len(members)} x {format_credits(amount)} = {format_credits(total)} needed"
            )
        ids = [member.id for member in members]
        posting.deposit_each([wallet_account(member_id) for member_id in ids], amount)
        for member_id in ids:
            posting.record(
                TransferKind.ALLOCATION,
                AccountKind.POOL,
                wallet_account(member_id),
                amount,
                member_id=member_id,
            )
        posting.flush()
        ledger.add_to_member_totals(uow.session, org_id, members, allocated=amount)
        result = BatchResult(posting.batch_id, total, member_views(uow, org, members))
        events.emit(uow, org, events.ALLOCATION_CREATED, lambda: event_bodies.batch_json(result))
        if total:
            alerts.check(uow, org)
        return result

    return run_write(
        uow,
        apply,
        org_id=org_id,
        actor=actor,
        key=idempotency_key,
        operation="allocate_credits",
        arguments={"target": target.describe(), "amount": amount},
        result_type=BatchResult,
        compact=_batch_compaction(uow, org_id, target, TransferKind.ALLOCATION),
    )


def revoke_credits(
    uow: UnitOfWork,
    org_id: str,
    target: Target,
    amount: int | None = None,
    *,
    actor: str,
    idempotency_key: str | None = None,
) -> BatchResult:
    """Take `amount` (or all it can spend) from each targeted member back to the pool.

    The result lists every targeted member. A replay of a revocation of every student or of a
    group lists the members the batch took credits from (its idempotency record keeps no
    member list; see the module's docstring).
    """
    if amount is not None:
        check_amount(amount)

    def apply() -> BatchResult:
        org = load_org(uow, org_id, lock=True)
        if not org.returnable:
            raise NotReturnable("this org does not let credits go back to the pool")
        members = target.resolve(uow, org_id)
        ids = [member.id for member in members]
        # Holds, then the wallets in id order; only then do the wallets' held amounts change.
        expired = lock_expired_holds(uow, org_id, ids)
        spendable = lock_wallets(uow, org_id, ids)
        lapsed = release_locked_holds(uow, org_id, expired)
        for member_id, freed in expired.freed.items():
            # What each can spend once its lapsed holds let go, less what of it lapsed too.
            spendable[member_id] += freed - lapsed.get(member_id, 0)
        if amount is not None:
            short = [member_id for member_id in ids if spendable[member_id] < amount]
            if short:
                who = uow.session.scalar(
                    select(User.name)
                    .join(Member, Member.user_id == User.id)
                    .where(Member.org_id == org_id, Member.id == short[0])
                )
                raise InsufficientCredits(
                    f"{who} has {format_credits(spendable[short[0]])} available, "
                    f"less than {format_credits(amount)}"
                    + (f"; {len(short) - 1} more member(s) too" if len(short) > 1 else "")
                )
            taken = dict.fromkeys(ids, amount)
        else:
            taken = {member_id: spendable[member_id] for member_id in ids if spendable[member_id]}
        posting = ledger.Posting(uow.session, org.id, actor, uow.now)
        if any(taken.values()):
            metering.settle(uow, org, actor=actor, posting=posting)
        wallets = [wallet_account(member_id) for member_id in taken]
        if amount is not None:
            if not posting.withdraw_each(wallets, amount):  # pragma: no cover - rows are locked
                raise InsufficientCredits("a wallet changed during the revocation")
        else:
            posting.withdraw_spendable_each(wallets)  # locked above, with what each can spend
        total = sum(taken.values())
        if total:
            posting.adjust(AccountKind.POOL, total)
        for member_id, value in taken.items():
            posting.record(
                TransferKind.REVOCATION,
                wallet_account(member_id),
                AccountKind.POOL,
                value,
                member_id=member_id,
            )
        posting.flush()
        result = BatchResult(posting.batch_id, total, member_views(uow, org, members))
        events.emit(uow, org, events.REVOCATION_CREATED, lambda: event_bodies.batch_json(result))
        if total:
            alerts.check(uow, org)
        return result

    return run_write(
        uow,
        apply,
        org_id=org_id,
        actor=actor,
        key=idempotency_key,
        operation="revoke_credits",
        arguments={"target": target.describe(), "amount": amount},
        result_type=BatchResult,
        compact=_batch_compaction(uow, org_id, target, TransferKind.REVOCATION),
    )


def _batch_compaction(
    uow: UnitOfWork, org_id: str, target: Target, kind: TransferKind
) -> Compaction[BatchResult]:
    """Keep a batch's id and total under its idempotency key, never its members: a replay
    lists them again, as they stand now, from the request's ids (which the key's fingerprint
    makes the same as the first time) or else from the batch's transfers, in the same order."""

    def keep(result: BatchResult) -> dict[str, Any]:
        return {"batch_id": result.batch_id, "total": result.total}

    def rebuild(stored: dict[str, Any]) -> BatchResult:
        org = load_org(uow, org_id)
        batch_id, total = str(stored["batch_id"]), int(stored["total"])
        if target.member_ids is not None:
            ids = list(dict.fromkeys(target.member_ids))
        else:
            ids = list(
                uow.session.scalars(
                    select(Transfer.member_id)
                    .where(
                        Transfer.org_id == org_id,
                        Transfer.batch_id == batch_id,
                        Transfer.kind == kind,
                        Transfer.member_id.is_not(None),
                    )
                    .order_by(Transfer.id)
                )
            )
        found: dict[str, Member] = {}
        for part in chunks(ids):
            found.update(
                (member.id, member)
                for member in uow.session.scalars(
                    select(Member).where(Member.org_id == org_id, Member.id.in_(part))
                )
            )
        members = [found[member_id] for member_id in ids if member_id in found]
        return BatchResult(batch_id, total, member_views(uow, org, members))

    return Compaction(keep, rebuild)
