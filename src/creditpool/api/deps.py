"""Dependencies shared by the routes: the unit of work, the caller, and its permissions.

Authorization is decided here and in services/auth.py only: a route declares the permission it
needs (`Allow(Permission.MANAGE)`) and never checks roles itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated, TypeVar

import anyio
from fastapi import Depends, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from creditpool.api.schemas import MemberChange
from creditpool.config import Config
from creditpool.domain.errors import Forbidden, Unauthenticated
from creditpool.domain.roles import Permission
from creditpool.services import access, auth
from creditpool.services.auth import Grant, Principal
from creditpool.storage.unit_of_work import UnitOfWork

T = TypeVar("T")
_bearer = HTTPBearer(auto_error=False, description="A personal token, org API key or operator key")


async def get_config(request: Request) -> Config:
    """The server's configuration."""
    config: Config = request.app.state.config
    return config


async def get_uow(request: Request) -> AsyncIterator[UnitOfWork]:
    """The request's unit of work: finding the caller, checking its rights and the service's
    work run in one transaction, on one connection."""
    uow = UnitOfWork(request.app.state.session_factory, request.app.state.clock, for_request=True)
    request.state.uow = uow
    try:
        yield uow
    finally:
        # Usually the service ended the transaction; one left open (a refusal before the
        # service ran) is rolled back off the event loop, since that talks to the database.
        if uow.pending:
            # Shielded: a request cancelled (its client gone) still gives its connection back.
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(uow.close)
        else:
            uow.close()


async def off_the_loop(work: Callable[[], T]) -> T:
    """Run a route's blocking work (its service call) in the thread pool, in one hop.

    The routes a vendor's product calls on every unit of work are `async` and hand their whole
    body over here: a plain `def` route costs a second hop to the thread pool, which FastAPI
    takes to check the returned model again.
    """
    return await run_in_threadpool(work)


ConfigDep = Annotated[Config, Depends(get_config)]
UowDep = Annotated[UnitOfWork, Depends(get_uow)]


async def bearer_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The request's bearer token; 401 without one."""
    if credentials is None or not credentials.credentials:
        raise Unauthenticated("send a bearer token: Authorization: Bearer <token>")
    token = credentials.credentials
    if len(token) > 512:
        raise Unauthenticated("the bearer token is unknown or revoked")
    return token


BearerToken = Annotated[str, Depends(bearer_token)]


def current_principal(uow: UowDep, config: ConfigDep, token: BearerToken) -> Principal:
    """Who is calling; 401 without a valid bearer token."""
    return auth.identify(uow, token, configured_operator_key=config.operator_key)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def current_user_id(principal: CurrentPrincipal) -> str:
    """The signed-in user's id; 403 for a key, which is not a person."""
    if principal.user_id is None:
        raise Forbidden("only a signed-in user can do that, not a key")
    return principal.user_id


CurrentUserId = Annotated[str, Depends(current_user_id)]


def require_operator(principal: CurrentPrincipal) -> Principal:
    """The caller, if it is an operator; 403 otherwise."""
    if not principal.operator:
        raise Forbidden("only an operator can do that")
    return principal


Operator = Annotated[Principal, Depends(require_operator)]


class Allow:
    """A dependency that lets a request through only with `permission` on the path's org."""

    def __init__(self, permission: Permission) -> None:
        self.permission = permission

    def __call__(self, org: str, uow: UowDep, config: ConfigDep, token: BearerToken) -> Grant:
        return auth.authorize_bearer(
            uow, token, org, self.permission, configured_operator_key=config.operator_key
        )


class AllowOwnMember:
    """Like Allow(READ_OWN) for a path that names a member: a member may read only itself."""

    def __call__(
        self, org: str, member: str, uow: UowDep, config: ConfigDep, token: BearerToken
    ) -> Grant:
        return auth.authorize_bearer(
            uow,
            token,
            org,
            Permission.READ_OWN,
            own_member_id=member,
            configured_operator_key=config.operator_key,
        )


class AllowLedger:
    """The org's ledger needs READ; one member's part of it (`?member=`) only READ_OWN."""

    def __call__(
        self,
        org: str,
        uow: UowDep,
        config: ConfigDep,
        token: BearerToken,
        member: Annotated[
            str | None, Query(max_length=64, description="Only this member's.")
        ] = None,
    ) -> Grant:
        permission = Permission.READ if member is None else Permission.READ_OWN
        return auth.authorize_bearer(
            uow,
            token,
            org,
            permission,
            own_member_id=member,
            configured_operator_key=config.operator_key,
        )


class AllowMemberChange:
    """Changing a seat needs MANAGE; changing a role needs GOVERN (only the owner makes
    managers)."""

    def __call__(
        self, org: str, change: MemberChange, uow: UowDep, config: ConfigDep, token: BearerToken
    ) -> Grant:
        permission = access.permission_to_change_member(changes_role=change.role is not None)
        return auth.authorize_bearer(
            uow, token, org, permission, configured_operator_key=config.operator_key
        )


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x20-\x7e]+$",
        description="Makes a POST safe to retry: the same key and body answer the first result "
        "(1 to 255 printable characters; per caller and org; kept 24 hours).",
    ),
]
