"""Credits: allocations, revocations, usage, holds, batch usage, access checks."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, status

from creditpool.api.deps import (
    Allow,
    BearerToken,
    ConfigDep,
    IdempotencyKey,
    UowDep,
    off_the_loop,
)
from creditpool.api.gathering import reads_of, usage_of
from creditpool.api.routing import api_router
from creditpool.api.schemas import (
    Access,
    Allocation,
    Batch,
    CaptureIn,
    Hold,
    HoldIn,
    Revocation,
    Usage,
    UsageBatch,
    UsageBatchIn,
    UsageEventResult,
    UsageIn,
)
from creditpool.domain.errors import InvalidInput
from creditpool.domain.roles import Permission
from creditpool.http_status import status_of_code
from creditpool.services import credits as credit_service
from creditpool.services import gathered_usage, holds, usage_batch
from creditpool.services.auth import Grant
from creditpool.services.gathered_reads import AccessCheck
from creditpool.services.gathered_usage import UsageRequest
from creditpool.services.targets import Target
from creditpool.services.views import AccessView

router = api_router("credits")

Manage = Annotated[Grant, Depends(Allow(Permission.MANAGE))]
Charge = Annotated[Grant, Depends(Allow(Permission.CHARGE))]


def _target(body: Allocation | Revocation) -> Target:
    if (body.member_ids is None) == (body.group_id is None):
        raise InvalidInput("name exactly one of member_ids and group_id")
    if body.group_id is not None:
        return Target.group(body.group_id)
    if body.member_ids == "all":
        return Target.all_students()
    assert body.member_ids is not None
    return Target.members(body.member_ids)


@router.post("/orgs/{org}/allocations", status_code=status.HTTP_201_CREATED, summary="Allot")
async def allocate(
    org: str,
    body: Allocation,
    uow: UowDep,
    grant: Manage,
    idempotency_key: IdempotencyKey = None,
) -> Batch:
    """Give `amount` from the pool to each member named, every student (`"all"`), or a group;
    all of them or none."""
    return await off_the_loop(
        lambda: Batch.of(
            credit_service.allocate_credits(
                uow,
                org,
                _target(body),
                body.amount,
                actor=grant.actor,
                idempotency_key=idempotency_key,
            )
        )
    )


@router.post("/orgs/{org}/revocations", status_code=status.HTTP_201_CREATED, summary="Revoke")
def revoke(
    org: str,
    body: Revocation,
    uow: UowDep,
    grant: Manage,
    idempotency_key: IdempotencyKey = None,
) -> Batch:
    """Take `amount` (or all it can spend) from each back to the pool; all or nothing."""
    return Batch.of(
        credit_service.revoke_credits(
            uow,
            org,
            _target(body),
            body.amount,
            actor=grant.actor,
            idempotency_key=idempotency_key,
        )
    )


@router.post(
    "/orgs/{org}/members/{member}/usage",
    status_code=status.HTTP_201_CREATED,
    summary="Charge usage",
)
async def charge(
    org: str,
    member: str,
    body: UsageIn,
    request: Request,
    uow: UowDep,
    config: ConfigDep,
    token: BearerToken,
    idempotency_key: IdempotencyKey = None,
) -> Usage:
    """Charge work done to the member's wallet, topping it up under automatic allocation."""
    asked = UsageRequest(token, member, body.amount, body.metrics, body.reference)
    if idempotency_key is None:
        # Gathered with the org's other charges arriving meanwhile (services/gathered_usage).
        return Usage.of(await usage_of(request).submit(org, asked))
    return await off_the_loop(
        lambda: Usage.of(
            gathered_usage.charge_alone(
                uow,
                org,
                asked,
                idempotency_key=idempotency_key,
                configured_operator_key=config.operator_key,
            )
        )
    )


@router.post(
    "/orgs/{org}/members/{member}/holds", status_code=status.HTTP_201_CREATED, summary="Hold"
)
def place_hold(
    org: str,
    member: str,
    body: HoldIn,
    uow: UowDep,
    grant: Charge,
    idempotency_key: IdempotencyKey = None,
) -> Hold:
    """Reserve credits for long work until captured, voided or expired."""
    return Hold.of(
        holds.place_hold(
            uow,
            org,
            member,
            body.amount,
            expires_in=body.expires_in,
            reference=body.reference,
            actor=grant.actor,
            idempotency_key=idempotency_key,
        )
    )


@router.get("/orgs/{org}/holds/{hold}", summary="Get a hold")
def get_hold(org: str, hold: str, uow: UowDep, _: Charge) -> Hold:
    """A hold and its status."""
    return Hold.of(holds.get_hold(uow, org, hold))


@router.post(
    "/orgs/{org}/holds/{hold}/capture", status_code=status.HTTP_201_CREATED, summary="Capture"
)
def capture(
    org: str,
    hold: str,
    body: CaptureIn,
    uow: UowDep,
    grant: Charge,
    idempotency_key: IdempotencyKey = None,
) -> Usage:
    """Charge up to the reserved amount as usage and release the rest."""
    return Usage.of(
        holds.capture_hold(
            uow,
            org,
            hold,
            body.amount,
            metrics=body.metrics,
            actor=grant.actor,
            idempotency_key=idempotency_key,
        )
    )


@router.post("/orgs/{org}/holds/{hold}/void", summary="Void a hold")
def void(
    org: str, hold: str, uow: UowDep, grant: Charge, idempotency_key: IdempotencyKey = None
) -> Hold:
    """Release the hold in full."""
    return Hold.of(
        holds.void_hold(uow, org, hold, actor=grant.actor, idempotency_key=idempotency_key)
    )


@router.post("/orgs/{org}/usage", summary="Charge usage in batch")
def charge_batch(org: str, body: UsageBatchIn, uow: UowDep, grant: Charge) -> UsageBatch:
    """1 to 1,000 events, each applied once per key; results in the order sent."""
    results = usage_batch.charge_usage_batch(uow, org, body.events, actor=grant.actor)
    return UsageBatch(
        results=[
            UsageEventResult(
                key=result.key,
                status=201 if result.code is None else status_of_code(result.code),
                code=result.code,
                transfer_id=result.transfer_id,
            )
            for result in results
        ]
    )


@router.get("/orgs/{org}/members/{member}/access", summary="Check access")
async def access(org: str, member: str, request: Request, token: BearerToken) -> Access:
    """Whether the org's pool pays for this member's seat right now, and why not."""
    # Gathered with the org's other reads arriving meanwhile (services/gathered_reads).
    view = await reads_of(request).submit(org, AccessCheck(token, member))
    assert isinstance(view, AccessView)
    return Access.model_validate({"access": view.access, "reason": view.reason})
