"""Users: people with a login, global across orgs, and their passwords.

Passwords are hashed with Argon2, slow on purpose, so the code takes care that nobody can make
it hash for free or learn from how long it took: a taken e-mail is refused before the new
password is hashed; an unknown e-mail is checked against a dummy hash, so it costs the same as
a wrong password; and an address locked out by too many failures (services.rate_limits) is
refused before any hashing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select, update

from creditpool.domain.errors import (
    AlreadyExists,
    Forbidden,
    InvalidInput,
    NotFound,
    Unauthenticated,
)
from creditpool.domain.text import clean_name
from creditpool.services import idempotency, rate_limits
from creditpool.services.transactions import run_write
from creditpool.storage.ids import new_id
from creditpool.storage.schema import User, WebSession
from creditpool.storage.unit_of_work import UnitOfWork

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1000  # a bound on what Argon2 is asked to hash
_hasher = PasswordHasher()
# A hash of no one's password, checked when an e-mail is unknown so that costs a wrong
# password's time; made once per set of hasher parameters.
_dummy_hash: str | None = None
SIGNUP_REFUSED = "this e-mail address cannot be used to sign up"
# Who a sign-up's idempotency key belongs to: nobody is signed in yet.
SIGNUP_ACTOR = "signup"


@dataclass(frozen=True)
class UserView:
    """A person with a login."""

    id: str
    email: str
    name: str
    is_operator: bool
    created_at: datetime
    email_verified: bool = False


def user_view(user: User) -> UserView:
    """Return the view of a user row."""
    return UserView(
        user.id, user.email, user.name, user.is_operator, user.created_at, user.email_verified
    )


def normalise_email(email: str) -> str:
    """Return the e-mail as stored, trimmed and lower-cased; InvalidInput unless one address."""
    # One plain address: no list, display name, quoted local part, space or IP for a domain.
    email = email.strip()
    try:
        # No DNS look-up: a sign-up must not wait on, or leak to, the network. The `.test`
        # names (RFC 2606) are allowed, as the demo and the tests use them.
        checked = validate_email(email, check_deliverability=False, test_environment=True)
    except EmailNotValidError as error:
        raise InvalidInput(f"{email[:80]!r} is not an e-mail address: {error}") from error
    return checked.normalized.lower()


def hash_password(password: str) -> str:
    """Return the Argon2 hash of a password of at least 8 characters."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"a password has at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def _dummy() -> str:
    global _dummy_hash
    if _dummy_hash is None or _hasher.check_needs_rehash(_dummy_hash):
        _dummy_hash = _hasher.hash("not anyone's password")
    return _dummy_hash


def _password_matches(password_hash: str | None, password: str) -> bool:
    """Check a password against a hash, or against the dummy when there is none: the same
    Argon2 work either way."""
    try:
        return bool(_hasher.verify(password_hash or _dummy(), password)) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def _email_taken(uow: UnitOfWork, email: str, idempotency_key: str | None) -> bool:
    """Whether the address has an account (and this is not a retry of the sign-up made it)."""
    with uow:
        taken = uow.session.scalars(select(User.id).where(User.email == email)).first()
        if taken is None or idempotency_key is None:
            return taken is not None
        return idempotency.request_key(uow, "", SIGNUP_ACTOR, idempotency_key) is None


def create_user(
    uow: UnitOfWork,
    *,
    email: str,
    name: str,
    password: str | None = None,
    password_hash: str | None = None,
    idempotency_key: str | None = None,
    on_created: Callable[[User], None] | None = None,
) -> UserView:
    """Sign a person up; the e-mail is unique whatever its case.

    Give `password`, or a `password_hash` made by hash_password (the demo signs up many people
    with one password, and Argon2 is slow on purpose). A taken address is refused before the
    password is hashed. `on_created` runs inside the transaction with the new row (it mails
    a confirmation link).
    """
    email = normalise_email(email)
    name = clean_name(name)
    if password is not None:
        if len(password) < MIN_PASSWORD_LENGTH:
            hash_password(password)  # raises InvalidInput, before anything else
        if _email_taken(uow, email, idempotency_key):
            raise AlreadyExists(SIGNUP_REFUSED)
        password_hash = hash_password(password)

    def apply() -> UserView:
        taken = uow.session.scalars(select(User.id).where(User.email == email)).first()
        if taken is not None:
            raise AlreadyExists(SIGNUP_REFUSED)
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
        if on_created is not None:
            on_created(user)
        return user_view(user)

    return run_write(
        uow,
        apply,
        org_id="",
        actor=SIGNUP_ACTOR,
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
        return user_view(user)


def find_user(uow: UnitOfWork, email: str) -> UserView:
    """Return the user with this e-mail, whatever its case."""
    with uow:
        user = uow.session.scalars(
            select(User).where(User.email == func.lower(email.strip()))
        ).one_or_none()
        if user is None:
            raise NotFound(f"no user with e-mail {email}")
        return user_view(user)


def authenticate(
    uow: UnitOfWork,
    *,
    email: str,
    password: str,
    password_limit: rate_limits.FailedPasswords | None = None,
) -> UserView:
    """Return the user whose e-mail and password these are; Unauthenticated otherwise.

    With `password_limit`, each attempt counts before any hashing (RateLimited over the limit,
    until the window ends: so for at most its length) and a correct password forgives it, with
    the failures before it.
    """
    counted = [] if password_limit is None else password_limit.buckets(email)
    for bucket, limit in counted:
        rate_limits.hit(uow, bucket, limit)
    with uow:
        user = uow.session.scalars(
            select(User).where(User.email == email.strip().lower())
        ).one_or_none()
        view = None if user is None else user_view(user)
        stored_hash = None if user is None else user.password_hash
    matches = _password_matches(stored_hash, password)  # an unknown address costs the same
    if view is None or not matches:
        raise Unauthenticated("wrong e-mail or password")
    for bucket, _ in counted:
        rate_limits.forgive(uow, bucket)
    return view


def user_with_email(uow: UnitOfWork, email: str) -> User:
    """Return the user row with this e-mail, whatever its case, in the open unit of work."""
    user = uow.session.scalars(
        select(User).where(User.email == email.strip().lower())
    ).one_or_none()
    if user is None:
        raise NotFound(f"no user with e-mail {email}")
    return user


def end_sessions_in(uow: UnitOfWork, user_id: str, *, keep: str | None = None) -> None:
    """End every web session of the user but `keep`, inside the caller's open transaction."""
    live = update(WebSession).where(WebSession.user_id == user_id, WebSession.ended_at.is_(None))
    if keep is not None:
        live = live.where(WebSession.id != keep)
    uow.session.execute(live.values(ended_at=uow.now))


def change_password(
    uow: UnitOfWork,
    user_id: str,
    *,
    current_password: str,
    new_password: str,
    keep_session: str | None = None,
    password_limit: rate_limits.FailedPasswords | None = None,
) -> None:
    """Change the user's password, given the current one; end every other web session.

    A wrong current password is Forbidden and counts as a failed password check.
    """
    user = get_user(uow, user_id)
    if len(new_password) < MIN_PASSWORD_LENGTH:
        hash_password(new_password)  # raises InvalidInput before any hashing
    try:
        authenticate(
            uow, email=user.email, password=current_password, password_limit=password_limit
        )
    except Unauthenticated as error:
        raise Forbidden("the current password is wrong") from error
    new_hash = hash_password(new_password)

    def apply() -> None:
        row = uow.session.get(User, user_id)
        if row is None:
            raise NotFound(f"no user {user_id}")
        row.password_hash = new_hash
        end_sessions_in(uow, user_id, keep=keep_session)

    run_write(uow, apply)


def set_password(uow: UnitOfWork, email: str, password: str) -> UserView:
    """Set a user's password (the operator's command line) and end all their web sessions."""
    new_hash = hash_password(password)

    def apply() -> UserView:
        user = user_with_email(uow, email)
        user.password_hash = new_hash
        end_sessions_in(uow, user.id)
        return user_view(user)

    return run_write(uow, apply)


def grant_operator(uow: UnitOfWork, email: str) -> UserView:
    """Mark a user as an operator of this creditpool."""

    def apply() -> UserView:
        user = user_with_email(uow, email)
        user.is_operator = True
        return user_view(user)

    return run_write(uow, apply)
