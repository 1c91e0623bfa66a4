"""Users and tokens."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Response, status

from creditpool.api.deps import CurrentUserId, IdempotencyKey, UowDep
from creditpool.api.pages import Cursor, Limit, page
from creditpool.api.schemas import (
    Me,
    Membership,
    Page,
    PersonalToken,
    Secret,
    SignUp,
    TokenRequest,
    User,
)
from creditpool.services import auth, members, users

router = APIRouter(tags=["users"])
# Answers that carry or list secrets must not be kept by a browser or a proxy.
NO_STORE = "no-store"


@router.post("/users", status_code=status.HTTP_201_CREATED, summary="Sign up")
def sign_up(body: SignUp, uow: UowDep, idempotency_key: IdempotencyKey = None) -> User:
    """Create a user; the e-mail is unique whatever its case."""
    return User.of(
        users.create_user(
            uow,
            email=body.email,
            name=body.name,
            password=body.password,
            idempotency_key=idempotency_key,
        )
    )


@router.post("/tokens", status_code=status.HTTP_201_CREATED, summary="Get a personal token")
def issue_token(
    body: TokenRequest,
    uow: UowDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> Secret:
    """Exchange an e-mail and password for a bearer token (shown once), named and expiring if
    asked."""
    response.headers["Cache-Control"] = NO_STORE
    issued = auth.issue_personal_token(
        uow,
        email=body.email,
        password=body.password,
        name=body.name,
        expires_in=None if body.expires_in is None else timedelta(seconds=body.expires_in),
        idempotency_key=idempotency_key,
    )
    return Secret(id=issued.id, token=issued.secret, name=issued.name, expires_at=issued.expires_at)


@router.get("/tokens", summary="List your personal tokens")
def list_tokens(
    uow: UowDep,
    user_id: CurrentUserId,
    response: Response,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[PersonalToken]:
    """Your live tokens (neither revoked nor expired), oldest first, never the tokens."""
    response.headers["Cache-Control"] = NO_STORE
    views = auth.list_personal_tokens(uow, user_id, after=cursor, limit=limit + 1)
    return page([PersonalToken.of(view) for view in views], limit)


@router.delete("/tokens/{token}", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke a token")
def revoke_token(token: str, uow: UowDep, user_id: CurrentUserId) -> None:
    """Stop one of your tokens working at once."""
    auth.revoke_personal_token(uow, user_id=user_id, token_id=token)


@router.get("/me", summary="Who am I")
def me(uow: UowDep, user_id: CurrentUserId) -> Me:
    """The signed-in user and the orgs it belongs to."""
    user = users.get_user(uow, user_id)
    return Me(
        user=User.of(user),
        memberships=[
            Membership(org_id=m.org_id, org_name=m.org_name, member_id=m.member_id, role=m.role)
            for m in members.memberships_of(uow, user_id)
        ],
    )
