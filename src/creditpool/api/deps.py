"""Dependencies shared by the routes: the unit of work, the caller, and its permissions.

Authorization is decided here and in services/auth.py only: a route declares the permission it
needs (`Allow(Permission.MANAGE)`) and never checks roles itself.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from creditpool.api.schemas import MemberChange
from creditpool.config import Config
from creditpool.domain.errors import Forbidden, Unauthenticated
from creditpool.domain.roles import Permission
from creditpool.services import auth
from creditpool.services.auth import Grant, Principal
from creditpool.storage.unit_of_work import UnitOfWork

_bearer = HTTPBearer(auto_error=False, description="A personal token, org API key or operator key")


def get_config(request: Request) -> Config:
    """The server's configuration."""
    config: Config = request.app.state.config
    return config


def get_uow(request: Request) -> UnitOfWork:
    """A unit of work for this request (one transaction per service call)."""
    uow = UnitOfWork(request.app.state.session_factory, request.app.state.clock)
    request.state.uow = uow
    return uow


ConfigDep = Annotated[Config, Depends(get_config)]
UowDep = Annotated[UnitOfWork, Depends(get_uow)]


def current_principal(
    uow: UowDep,
    config: ConfigDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Who is calling; 401 without a valid bearer token."""
    if credentials is None or not credentials.credentials:
        raise Unauthenticated("send a bearer token: Authorization: Bearer <token>")
    token = credentials.credentials
    if len(token) > 512:
        raise Unauthenticated("the bearer token is unknown or revoked")
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

    def __call__(self, org: str, uow: UowDep, principal: CurrentPrincipal) -> Grant:
        return auth.authorize(uow, principal, org, self.permission)


class AllowOwnMember:
    """Like Allow(READ_OWN) for a path that names a member: a member may read only itself."""

    def __call__(self, org: str, member: str, uow: UowDep, principal: CurrentPrincipal) -> Grant:
        return auth.authorize(uow, principal, org, Permission.READ_OWN, own_member_id=member)


class AllowLedger:
    """The org's ledger needs READ; one member's part of it (`?member=`) only READ_OWN."""

    def __call__(
        self,
        org: str,
        uow: UowDep,
        principal: CurrentPrincipal,
        member: Annotated[
            str | None, Query(max_length=64, description="Only this member's.")
        ] = None,
    ) -> Grant:
        if member is None:
            return auth.authorize(uow, principal, org, Permission.READ)
        return auth.authorize(uow, principal, org, Permission.READ_OWN, own_member_id=member)


class AllowMemberChange:
    """Changing a seat needs MANAGE; changing a role needs GOVERN (only the owner makes
    managers)."""

    def __call__(
        self, org: str, change: MemberChange, uow: UowDep, principal: CurrentPrincipal
    ) -> Grant:
        permission = Permission.GOVERN if change.role is not None else Permission.MANAGE
        return auth.authorize(uow, principal, org, permission)


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
