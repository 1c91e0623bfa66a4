"""Users and tokens."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request, Response, status

from creditpool.api.deps import ConfigDep, CurrentUserId, IdempotencyKey, UowDep
from creditpool.api.pages import Cursor, Limit, page
from creditpool.api.rate_limits import AnonymousLimit, failed_password_limit
from creditpool.api.routing import api_router
from creditpool.api.schemas import (
    Me,
    Membership,
    NewPassword,
    Page,
    PasswordChange,
    PasswordResetRequest,
    PersonalToken,
    Secret,
    SignUp,
    TokenRequest,
    User,
)
from creditpool.services import auth, members, user_links, users
from creditpool.services.rate_limits import FailedPasswords

router = api_router("users")
PasswordLimit = Annotated[FailedPasswords | None, Depends(failed_password_limit)]
# Answers that carry or list secrets must not be kept by a browser or a proxy.
NO_STORE = "no-store"


@router.post(
    "/users",
    status_code=status.HTTP_201_CREATED,
    summary="Sign up",
    dependencies=[AnonymousLimit],
)
def sign_up(
    body: SignUp,
    request: Request,
    uow: UowDep,
    config: ConfigDep,
    idempotency_key: IdempotencyKey = None,
) -> User:
    """Create a user, the e-mail unique whatever its case; a link to confirm it is mailed."""
    created = users.create_user(
        uow,
        email=body.email,
        name=body.name,
        password=body.password,
        idempotency_key=idempotency_key,
        on_created=lambda user: user_links.mail_verification(uow, user, config.public_url),
    )
    request.app.state.on_mail_queued()
    return User.of(created)


@router.post(
    "/tokens",
    status_code=status.HTTP_201_CREATED,
    summary="Get a personal token",
    dependencies=[AnonymousLimit],
)
def issue_token(
    body: TokenRequest,
    uow: UowDep,
    response: Response,
    password_limit: PasswordLimit,
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
        password_limit=password_limit,
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


@router.post("/me/password", status_code=status.HTTP_204_NO_CONTENT, summary="Change your password")
def change_password(
    body: PasswordChange, uow: UowDep, user_id: CurrentUserId, password_limit: PasswordLimit
) -> None:
    """Change your password, given the current one (a wrong one is 403 and counts as a failed
    password check); every web session of yours ends."""
    users.change_password(
        uow,
        user_id,
        current_password=body.current_password,
        new_password=body.new_password,
        password_limit=password_limit,
    )


@router.post(
    "/password-resets",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Mail a password reset link",
    dependencies=[AnonymousLimit],
    response_class=Response,
)
def request_password_reset(
    body: PasswordResetRequest, request: Request, uow: UowDep, config: ConfigDep
) -> Response:
    """Mail a link to choose a new password, valid once for an hour, if the address has an
    account; the answer is the same empty 202 whether or not it has one."""
    user_links.request_password_reset(uow, body.email, public_url=config.public_url)
    request.app.state.on_mail_queued()
    return Response(status_code=status.HTTP_202_ACCEPTED)


@router.post(
    "/password-resets/{token}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Set a new password through a reset link",
    dependencies=[AnonymousLimit],
)
def reset_password(token: str, body: NewPassword, uow: UowDep) -> None:
    """Set the password the link's owner chose and end all their web sessions; 404
    `not_found` for an unknown, used or expired link."""
    user_links.reset_password(uow, token, password=body.password)
