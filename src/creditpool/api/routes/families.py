"""Pools inside pools: an org's children, and credits between its pool and theirs."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, status

from creditpool.api.deps import Allow, IdempotencyKey, UowDep
from creditpool.api.family_schemas import ChildAllocation, ChildRevocation, FamilyTransfer
from creditpool.api.pages import Cursor, Limit, page
from creditpool.api.routing import api_router
from creditpool.api.schemas import NewOrg, Org, Page
from creditpool.domain.errors import InvalidInput, NotFound
from creditpool.domain.roles import Permission
from creditpool.services import auth, families, users
from creditpool.services.auth import Grant

router = api_router("families")

Govern = Annotated[Grant, Depends(Allow(Permission.GOVERN))]
Manage = Annotated[Grant, Depends(Allow(Permission.MANAGE))]


@router.post(
    "/orgs/{org}/children", status_code=status.HTTP_201_CREATED, summary="Open a child org"
)
def create_child(
    org: str, body: NewOrg, uow: UowDep, grant: Govern, idempotency_key: IdempotencyKey = None
) -> Org:
    """Open an org one level below this one (three levels at most: a fourth is 422
    validation_error), for an existing user who becomes its owner on a licensed seat. Its pool
    starts empty; its ledger, members and settings are its own."""
    try:
        owner = users.find_user(uow, body.owner_email)
    except NotFound as error:
        raise InvalidInput(f"no user with e-mail {body.owner_email}: sign them up first") from error
    created = families.create_child(
        uow,
        org,
        name=body.name,
        owner_user_id=owner.id,
        settings=body.settings.change() if body.settings else None,
        actor=grant.actor,
        idempotency_key=idempotency_key,
    )
    return Org.of(auth.org_seen_by(created, grant))


@router.get("/orgs/{org}/children", summary="List child orgs")
def list_children(
    org: str, uow: UowDep, grant: Manage, limit: Limit = 50, cursor: Cursor = None
) -> Page[Org]:
    """The org's children by name, each with its balance and the roll-up of its subtree."""
    children = families.list_children(uow, org, after=cursor, limit=limit + 1)
    return page([Org.of(auth.org_seen_by(child, grant)) for child in children], limit)


@router.post(
    "/orgs/{org}/children/{child}/allocations",
    status_code=status.HTTP_201_CREATED,
    summary="Allot credits to a child",
)
def allot_to_child(
    org: str,
    child: str,
    body: ChildAllocation,
    uow: UowDep,
    grant: Manage,
    idempotency_key: IdempotencyKey = None,
) -> FamilyTransfer:
    """Move `amount` from this org's pool to its child's, recorded in both ledgers under one
    batch id; 409 insufficient_credits, and nothing moves, when the pool (seat burn included)
    cannot cover it."""
    return FamilyTransfer.of(
        families.allot_to_child(
            uow, org, child, body.amount, actor=grant.actor, idempotency_key=idempotency_key
        )
    )


@router.post(
    "/orgs/{org}/children/{child}/revocations",
    status_code=status.HTTP_201_CREATED,
    summary="Take credits back from a child",
)
def take_back_from_child(
    org: str,
    child: str,
    body: ChildRevocation,
    uow: UowDep,
    grant: Manage,
    idempotency_key: IdempotencyKey = None,
) -> FamilyTransfer:
    """Move `amount` (all the child has available when absent) from the child's pool back to
    this org's; 409 not_returnable when the child forbids returns, insufficient_credits when
    it has less."""
    return FamilyTransfer.of(
        families.take_back_from_child(
            uow, org, child, body.amount, actor=grant.actor, idempotency_key=idempotency_key
        )
    )
