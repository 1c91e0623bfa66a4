"""The operator's powers: keys for machines, and people marked as operators; listed and taken back.

Both take effect at once: `auth.identify` reads a key's `revoked_at` and a user's
`is_operator` on every request, and the pages read the signed-in user on every page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from creditpool.domain.errors import Conflict, NotFound
from creditpool.domain.text import clean_name
from creditpool.services.auth import IssuedSecret
from creditpool.services.transactions import run_write
from creditpool.services.users import user_with_email
from creditpool.storage.ids import digest_secret, new_id, new_secret
from creditpool.storage.schema import OperatorKey, User
from creditpool.storage.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class OperatorKeyView:
    """An operator key as listed: never the secret."""

    id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class OperatorView:
    """A person with the operator's powers."""

    id: str
    email: str
    name: str


def _key_view(key: OperatorKey) -> OperatorKeyView:
    return OperatorKeyView(key.id, key.name, key.created_at, key.last_used_at, key.revoked_at)


def create_operator_key(uow: UnitOfWork, *, name: str) -> IssuedSecret:
    """Make a key with the operator's powers, for a machine; the secret is returned this once."""
    name = clean_name(name)

    def apply() -> IssuedSecret:
        key_id, secret = new_id("opk"), new_secret()
        uow.session.add(
            OperatorKey(id=key_id, name=name, secret_hash=digest_secret(secret), created_at=uow.now)
        )
        return IssuedSecret(key_id, f"cpo.{key_id}.{secret}")

    return run_write(uow, apply)


def list_operator_keys(
    uow: UnitOfWork, *, include_revoked: bool = True, limit: int | None = None
) -> list[OperatorKeyView]:
    """Return the operator keys, oldest first (at most `limit`), revoked ones too unless told
    otherwise."""
    with uow:
        query = select(OperatorKey).order_by(OperatorKey.id).limit(limit)
        if not include_revoked:
            query = query.where(OperatorKey.revoked_at.is_(None))
        return [_key_view(key) for key in uow.session.scalars(query)]


def revoke_operator_key(uow: UnitOfWork, key_id: str) -> OperatorKeyView:
    """Stop an operator key working at once; revoking it again changes nothing."""

    def apply() -> OperatorKeyView:
        key = uow.session.get(OperatorKey, key_id)
        if key is None:
            raise NotFound(f"no operator key {key_id}")
        key.revoked_at = key.revoked_at or uow.now
        return _key_view(key)

    return run_write(uow, apply)


def list_operators(uow: UnitOfWork, *, limit: int | None = None) -> list[OperatorView]:
    """Return the people marked as operators, by e-mail (at most `limit`)."""
    with uow:
        people = uow.session.scalars(
            select(User).where(User.is_operator).order_by(User.email).limit(limit)
        )
        return [OperatorView(user.id, user.email, user.name) for user in people]


def revoke_operator(uow: UnitOfWork, email: str, *, by_user_id: str | None = None) -> OperatorView:
    """Take a person's operator powers back; at once, and their data stays.

    `by_user_id` names the operator doing it from the pages: nobody takes back their own powers
    there, so a console can never lock its last operator out by a slip of the mouse.
    """

    def apply() -> OperatorView:
        user = user_with_email(uow, email)
        if user.id == by_user_id:
            raise Conflict("you cannot take back your own operator powers; another operator can")
        user.is_operator = False
        return OperatorView(user.id, user.email, user.name)

    return run_write(uow, apply)
