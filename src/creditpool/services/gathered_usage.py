"""Single usage charges of one org, gathered into one transaction.

A vendor's product charges usage on every unit of work, many at once. While an org's charges
commit, the API gathers the next ones that arrive (api/gathering.py) and hands them here
together: each is authorized on its own (one query per distinct bearer), checked on its own
and refused on its own, and the ones that pass are charged with a few set-based statements
(services/many_charges.py) and commit together. Each caller is answered after that commit, so
an answer still means a durable charge; the answers are those of charging the requests one
after the other in the order they arrived.

A request with an idempotency key is not gathered: `charge_alone` charges it as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from creditpool.domain.errors import CreditpoolError
from creditpool.domain.roles import Permission
from creditpool.services import auth, usage
from creditpool.services.credits import check_amount, check_reference
from creditpool.services.many_charges import Charge, Charged, charge_many
from creditpool.services.transactions import run_write
from creditpool.services.views import UsageResult
from creditpool.storage.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class UsageRequest:
    """One request to charge usage, as it came: who sent it and what it asks."""

    bearer: str
    member_id: str
    amount: int
    metrics: Mapping[str, object] | None = None
    reference: str | None = None


Answer = UsageResult | CreditpoolError


def charge_gathered(
    uow: UnitOfWork,
    org_id: str,
    requests: Sequence[UsageRequest],
    *,
    configured_operator_key: str | None,
) -> list[Answer]:
    """Authorize and charge each request in one transaction; return each one's answer, in
    order. `uow` is a request's unit of work (`for_request`): the callers' authorization opens
    the transaction the charges then join."""
    answers: list[Answer | None] = [None] * len(requests)
    grants: dict[str, auth.Grant | CreditpoolError] = {}
    for bearer in dict.fromkeys(request.bearer for request in requests):
        try:
            grants[bearer] = auth.authorize_bearer(
                uow,
                bearer,
                org_id,
                Permission.CHARGE,
                configured_operator_key=configured_operator_key,
            )
        except CreditpoolError as refusal:
            grants[bearer] = refusal
    charges: list[tuple[int, Charge]] = []
    for index, request in enumerate(requests):
        grant = grants[request.bearer]
        try:
            if isinstance(grant, CreditpoolError):
                raise grant
            check_amount(request.amount)
            check_reference(request.reference)
            metrics = usage.check_metrics(request.metrics)
        except CreditpoolError as refusal:
            answers[index] = refusal
            continue
        charge = Charge(request.member_id, request.amount, metrics, request.reference, grant.actor)
        charges.append((index, charge))
    for (index, _), answer in zip(charges, _charge(uow, org_id, charges), strict=True):
        answers[index] = answer
    return [answer for answer in answers if answer is not None]


def _charge(uow: UnitOfWork, org_id: str, charges: list[tuple[int, Charge]]) -> list[Answer]:
    if not charges:
        return []  # every request refused: nothing commits, as when each was refused alone
    if len(charges) == 1:
        # Alone: the single charge's own path, whose fast case is a few statements less.
        ((_, charge),) = charges
        try:
            return [_charge_one(uow, org_id, charge)]
        except CreditpoolError as refusal:
            return [refusal]
    try:
        outcomes = run_write(
            uow, lambda: charge_many(uow, org_id, [c for _, c in charges], with_members=True)
        )
    except CreditpoolError as refusal:
        # Only the org's usage account past its limit refuses them all together.
        return [refusal] * len(charges)
    return [_answer(outcome) for outcome in outcomes]


def _answer(outcome: Charged | CreditpoolError) -> Answer:
    if isinstance(outcome, CreditpoolError):
        return outcome
    assert outcome.member is not None
    return UsageResult(outcome.transfer, outcome.member, outcome.auto_allocated)


def charge_alone(
    uow: UnitOfWork,
    org_id: str,
    request: UsageRequest,
    *,
    idempotency_key: str,
    configured_operator_key: str | None,
) -> UsageResult:
    """Authorize and charge one request under its idempotency key, in one transaction."""
    grant = auth.authorize_bearer(
        uow,
        request.bearer,
        org_id,
        Permission.CHARGE,
        configured_operator_key=configured_operator_key,
    )
    metrics = usage.check_metrics(request.metrics)
    charge = Charge(request.member_id, request.amount, metrics, request.reference, grant.actor)
    return _charge_one(uow, org_id, charge, idempotency_key=idempotency_key)


def _charge_one(
    uow: UnitOfWork, org_id: str, charge: Charge, *, idempotency_key: str | None = None
) -> UsageResult:
    return usage.charge_usage(
        uow,
        org_id,
        charge.member_id,
        charge.amount,
        metrics=charge.metrics,
        reference=charge.reference,
        actor=charge.actor,
        idempotency_key=idempotency_key,
    )
