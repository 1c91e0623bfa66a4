"""Balance reads and access checks of one org, gathered into one transaction.

A vendor's product checks access on every sign-in and reads the balance often, for all its
customers at once. The API gathers an org's reads that arrive while its previous ones run
(api/gathering.py) and answers them here from one read of each kind: each caller authorized
on its own (one query per distinct bearer and permission), each answer its own. The reads
start after every request they answer arrived, so none answers an older state than a request
sent alone would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from creditpool.domain.errors import CreditpoolError
from creditpool.domain.roles import Permission
from creditpool.services import auth, reports
from creditpool.services.views import AccessView, BalanceView
from creditpool.storage.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class BalanceRead:
    """A request for the org's balance at an instant (None: now)."""

    bearer: str
    at: datetime | None = None


@dataclass(frozen=True)
class AccessCheck:
    """A request to know whether the pool pays for a member's seat now."""

    bearer: str
    member_id: str


Read = BalanceRead | AccessCheck
Answer = BalanceView | AccessView | CreditpoolError


def read_gathered(
    uow: UnitOfWork,
    org_id: str,
    requests: Sequence[Read],
    *,
    configured_operator_key: str | None,
) -> list[Answer]:
    """Authorize and answer each request, in order, in one transaction. `uow` is a request's
    unit of work (`for_request`)."""
    refusals: dict[tuple[str, Permission], CreditpoolError | None] = {}
    for request in requests:
        needed = _permission(request)
        if (request.bearer, needed) in refusals:
            continue
        try:
            auth.authorize_bearer(
                uow, request.bearer, org_id, needed, configured_operator_key=configured_operator_key
            )
            refusals[(request.bearer, needed)] = None
        except CreditpoolError as refusal:
            refusals[(request.bearer, needed)] = refusal
    allowed = [i for i, r in enumerate(requests) if refusals[(r.bearer, _permission(r))] is None]
    answers: list[Answer | None] = [refusals[(r.bearer, _permission(r))] for r in requests]
    balances = [i for i in allowed if isinstance(requests[i], BalanceRead)]
    checks = [i for i in allowed if isinstance(requests[i], AccessCheck)]
    if allowed:
        with uow:
            if balances:
                instants = [_balance(requests[i]).at for i in balances]
                read = reports.balances_at(uow, org_id, instants)
                for i, answer in zip(balances, read, strict=True):
                    answers[i] = answer
            if checks:
                members = [_check(requests[i]).member_id for i in checks]
                checked = reports.access_of(uow, org_id, members)
                for i, seen in zip(checks, checked, strict=True):
                    answers[i] = seen
    return [answer for answer in answers if answer is not None]


def _permission(request: Read) -> Permission:
    return Permission.READ if isinstance(request, BalanceRead) else Permission.CHARGE


def _balance(request: Read) -> BalanceRead:
    assert isinstance(request, BalanceRead)
    return request


def _check(request: Read) -> AccessCheck:
    assert isinstance(request, AccessCheck)
    return request
