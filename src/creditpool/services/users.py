"""Users: people with a login, global across orgs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select

from creditpool.domain.errors import AlreadyExists, InvalidInput, NotFound, Unauthenticated
from creditpool.domain.text import clean_name
from creditpool.services.transactions import run_write
from creditpool.storage.ids import new_id
from creditpool.storage.schema import User
from creditpool.storage.unit_of_work import UnitOfWork

MIN_PASSWORD_LENGTH = 8
_hasher = PasswordHasher()


@dataclass(frozen=True)
class UserView:
    """A person with a login."""

    id: str
    email: str
    name: str
    is_operator: bool
    created_at: datetime


def _view(user: User) -> UserView:
    return UserView(user.id, user.email, user.name, user.is_operator, user.created_at)


def normalise_email(email: str) -> str:
    """Return the e-mail as stored: trimmed and lower-cased; InvalidInput if it is not one."""
    email = email.strip().lower()
    local, _, domain = email.partition("@")
    if not local or "." not in domain or len(email) > 320 or any(ch.isspace() for ch in email):
        raise InvalidInput(f"{email[:80]!r} is not an e-mail address")
    return email


def hash_password(password: str) -> str:
    """Return the Argon2 hash of a password of at least 8 characters."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"a password has at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def create_user(
    uow: UnitOfWork,
    *,
    email: str,
    name: str,
    password: str | None = None,
    password_hash: str | None = None,
    idempotency_key: str | None = None,
) -> UserView:
    """Sign a person up; the e-mail is unique whatever its case.

    Give `password`, or a `password_hash` made by hash_password (the demo signs up many people
    with one password, and Argon2 is slow on purpose).
    """
    email = normalise_email(email)
    name = clean_name(name)
    if password is not None:
        password_hash = hash_password(password)

    def apply() -> UserView:
        taken = uow.session.scalars(select(User.id).where(User.email == email)).first()
        if taken is not None:
            raise AlreadyExists(f"a user with e-mail {email} exists")
        user = User(
            id=new_id("usr"),
            email=email,
            name=name,
            password_hash=password_hash,
            is_operator=False,
            created_at=uow.now,
        )
        uow.session.add(user)
        uow.session.flush()
        return _view(user)

    return run_write(
        uow,
        apply,
        org_id="",
        actor="signup",
        key=idempotency_key,
        operation="create_user",
        arguments={"email": email, "name": name},
        result_type=UserView,
    )


def get_user(uow: UnitOfWork, user_id: str) -> UserView:
    """Return a user by id."""
    with uow:
        user = uow.session.get(User, user_id)
        if user is None:
            raise NotFound(f"no user {user_id}")
        return _view(user)


def find_user(uow: UnitOfWork, email: str) -> UserView:
    """Return the user with this e-mail, whatever its case."""
    with uow:
        user = uow.session.scalars(
            select(User).where(User.email == func.lower(email.strip()))
        ).one_or_none()
        if user is None:
            raise NotFound(f"no user with e-mail {email}")
        return _view(user)


def authenticate(uow: UnitOfWork, *, email: str, password: str) -> UserView:
    """Return the user whose e-mail and password these are; Unauthenticated otherwise."""
    with uow:
        user = uow.session.scalars(
            select(User).where(User.email == email.strip().lower())
        ).one_or_none()
        try:
            if user is None or user.password_hash is None:
                raise VerificationError("no such user")
            _hasher.verify(user.password_hash, password)
        except (VerificationError, InvalidHashError) as error:
            raise Unauthenticated("wrong e-mail or password") from error
        return _view(user)


def grant_operator(uow: UnitOfWork, email: str) -> UserView:
    """Mark a user as an operator of this creditpool."""
    with uow:
        user = uow.session.scalars(
            select(User).where(User.email == email.strip().lower())
        ).one_or_none()
        if user is None:
            raise NotFound(f"no user with e-mail {email}")
        user.is_operator = True
        view = _view(user)
        uow.commit()
        return view
