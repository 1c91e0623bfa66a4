"""Organisations: creation, settings, purchases, lots, pause, balance, ledger, API keys,
reset."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Query, Request, Response, status

from creditpool.api.deps import (
    Allow,
    AllowLedger,
    BearerToken,
    CurrentPrincipal,
    IdempotencyKey,
    Operator,
    UowDep,
)
from creditpool.api.gathering import reads_of
from creditpool.api.pages import Cursor, Limit, page
from creditpool.api.routing import api_router
from creditpool.api.schemas import (
    ApiKey,
    ApiKeySecret,
    Balance,
    Lot,
    NewApiKey,
    NewOrg,
    Org,
    Page,
    Purchase,
    Reset,
    Settings,
    SettingsIn,
    Transfer,
    settings_body,
)
from creditpool.domain.errors import InvalidInput, NotFound
from creditpool.domain.model import TransferKind
from creditpool.domain.roles import Permission
from creditpool.services import access, auth, lot_views, orgs, reports, resets, users
from creditpool.services import credits as credit_service
from creditpool.services.auth import Grant
from creditpool.services.gathered_reads import BalanceRead
from creditpool.services.views import BalanceView

router = api_router("orgs")

Govern = Annotated[Grant, Depends(Allow(Permission.GOVERN))]
Read = Annotated[Grant, Depends(Allow(Permission.READ))]
Operate = Annotated[Grant, Depends(Allow(Permission.OPERATE))]
Manage = Annotated[Grant, Depends(Allow(Permission.MANAGE))]


@router.post("/orgs", status_code=status.HTTP_201_CREATED, summary="Open an org")
def create_org(
    body: NewOrg, uow: UowDep, operator: Operator, idempotency_key: IdempotencyKey = None
) -> Org:
    """Open an org for an existing user, who becomes its owner on a licensed seat."""
    try:
        owner = users.find_user(uow, body.owner_email)
    except NotFound as error:
        raise InvalidInput(f"no user with e-mail {body.owner_email}: sign them up first") from error
    created = orgs.create_org(
        uow,
        name=body.name,
        owner_user_id=owner.id,
        settings=body.settings.change() if body.settings else None,
        actor=operator.actor,
        idempotency_key=idempotency_key,
    )
    return Org.of(created)


@router.get("/orgs", summary="List orgs")
def list_orgs(
    uow: UowDep, principal: CurrentPrincipal, limit: Limit = 50, cursor: Cursor = None
) -> Page[Org]:
    """Every org for an operator; the orgs a user runs (as owner or manager); a key's org."""
    views = access.orgs_listed_for(uow, principal, after=cursor, limit=limit + 1)
    return page([Org.of(view) for view in views], limit)


@router.get("/orgs/{org}", summary="Get an org")
def get_org(org: str, uow: UowDep, grant: Read) -> Org:
    """The org with its settings, balance now and summed usage (the invite code only for who
    may invite)."""
    return Org.of(auth.org_seen_by(orgs.get_org(uow, org), grant))


@router.patch("/orgs/{org}/settings", summary="Change settings")
def change_settings(org: str, body: SettingsIn, uow: UowDep, grant: Govern) -> Settings:
    """Change any part of the settings; the rest keeps its value. New seat rates apply now."""
    return settings_body(orgs.update_settings(uow, org, body.change(), actor=grant.actor))


@router.post(
    "/orgs/{org}/purchases", status_code=status.HTTP_201_CREATED, summary="Record a purchase"
)
def record_purchase(
    org: str, body: Purchase, uow: UowDep, grant: Operate, idempotency_key: IdempotencyKey = None
) -> Transfer:
    """Credits bought by the org go into its pool."""
    return Transfer.of(
        credit_service.record_purchase(
            uow,
            org,
            body.amount,
            reference=body.reference,
            actor=grant.actor,
            idempotency_key=idempotency_key,
            priority=body.priority,
            expires_at=body.expires_at,
        )
    )


@router.post("/orgs/{org}/pause", summary="Pause the org")
def pause(org: str, uow: UowDep, grant: Govern, idempotency_key: IdempotencyKey = None) -> Org:
    """Stop all burning and refuse usage until resumed."""
    return Org.of(
        orgs.set_paused(uow, org, paused=True, actor=grant.actor, idempotency_key=idempotency_key)
    )


@router.post("/orgs/{org}/resume", summary="Resume the org")
def resume(org: str, uow: UowDep, grant: Govern, idempotency_key: IdempotencyKey = None) -> Org:
    """Start burning and accepting usage again."""
    return Org.of(
        orgs.set_paused(uow, org, paused=False, actor=grant.actor, idempotency_key=idempotency_key)
    )


@router.get("/orgs/{org}/balance", summary="Balance now or later")
async def balance(
    org: str,
    request: Request,
    token: BearerToken,
    at: Annotated[
        datetime | None,
        Query(
            description="An instant with a zone (RFC 3339), now or later: a time in the past "
            "is refused with 422 validation_error.",
            examples=["2030-01-01T00:00:00Z"],
        ),
    ] = None,
) -> Balance:
    """The balance as it will stand at `at` (now when absent), seat burn included."""
    if at is not None and at.tzinfo is None:
        raise InvalidInput("`at` needs a time zone, e.g. 2026-11-22T10:00:00Z")
    # Gathered with the org's other reads arriving meanwhile (services/gathered_reads).
    view = await reads_of(request).submit(org, BalanceRead(token, at))
    assert isinstance(view, BalanceView)
    return Balance.of(view)


@router.get("/orgs/{org}/transfers", summary="The ledger")
def list_transfers(
    org: str,
    uow: UowDep,
    _: Annotated[Grant, Depends(AllowLedger())],
    member: Annotated[str | None, Query(max_length=64, description="Only this member's.")] = None,
    kind: Annotated[TransferKind | None, Query(description="Only this kind.")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[Transfer]:
    """Transfers, newest first; a member may list its own with `?member=`."""
    views = reports.list_transfers(
        uow, org, member_id=member, kind=kind, before=cursor, limit=limit + 1
    )
    return page([Transfer.of(view) for view in views], limit)


@router.get("/orgs/{org}/lots", summary="The lots")
def list_lots(
    org: str, uow: UowDep, _: Manage, limit: Limit = 50, cursor: Cursor = None
) -> Page[Lot]:
    """The org's lots in the order they are spent (lowest priority, then soonest expiry with
    never-expiring lots last, then oldest), each with where its credits are now."""
    views = lot_views.lots_of(uow, org, after=cursor, limit=limit + 1)
    return page([Lot.of(view) for view in views], limit)


@router.post(
    "/orgs/{org}/api-keys", status_code=status.HTTP_201_CREATED, summary="Create an API key"
)
def create_api_key(
    org: str,
    body: NewApiKey,
    uow: UowDep,
    grant: Govern,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> ApiKeySecret:
    """A key for the vendor's product; the key is shown this once."""
    response.headers["Cache-Control"] = "no-store"  # a secret: no cache may keep it
    issued = auth.create_api_key(
        uow,
        org,
        name=body.name,
        scopes=list(body.scopes),
        actor=grant.actor,
        idempotency_key=idempotency_key,
    )
    return ApiKeySecret(id=issued.id, key=issued.secret)


@router.get("/orgs/{org}/api-keys", summary="List API keys")
def list_api_keys(
    org: str, uow: UowDep, _: Govern, limit: Limit = 50, cursor: Cursor = None
) -> Page[ApiKey]:
    """The org's live keys, oldest first, never their secrets."""
    keys = auth.list_api_keys(uow, org, after=cursor, limit=limit + 1)
    return page([ApiKey.of(key) for key in keys], limit)


@router.delete(
    "/orgs/{org}/api-keys/{key}", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke a key"
)
def revoke_api_key(org: str, key: str, uow: UowDep, _: Govern) -> None:
    """The key stops working at once."""
    auth.revoke_api_key(uow, org, key)


@router.get("/orgs/{org}/reset", summary="Preview a reset")
def preview_reset(org: str, uow: UowDep, _: Govern) -> Reset:
    """What a reset now would do, changing nothing (`invite_code` is the one that would stop)."""
    return Reset.of(resets.preview_reset(uow, org))


@router.post("/orgs/{org}/reset", summary="Reset the class")
def reset(org: str, uow: UowDep, grant: Govern, idempotency_key: IdempotencyKey = None) -> Reset:
    """Remove every student, return their credits, revoke invitations, rotate the code."""
    return Reset.of(resets.reset_org(uow, org, actor=grant.actor, idempotency_key=idempotency_key))
