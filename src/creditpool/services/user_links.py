"""Links mailed to a person about their account: a password reset, an e-mail confirmation.

A link is `<public url>/password-reset/<link id>.<secret>` (or `/verify-email/...`): a UserLink
row keeps only the secret's SHA-256, the address it went to, and when it expires. It works
once: using it marks it used, by one conditional update, so two uses at the same moment cannot
both succeed. A reset link lasts an hour; a newer one replaces it; using it ends every session
and revokes every personal token of the person (whoever had the account may have made some),
and lifts a lock-out from failed passwords. A confirmation link lasts a week. Asking for a
reset answers the same whether or not the address has an account, so the answer tells nobody
who has one; an address gets at most RESET_MAILS_PER_HOUR such mails, so nobody can flood a
mailbox with them.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from enum import StrEnum

from sqlalchemy import delete, select, update

from creditpool.domain.errors import InvalidInput, NotFound, RateLimited
from creditpool.services import mail, rate_limits
from creditpool.services.transactions import run_write
from creditpool.services.users import end_sessions_in, hash_password, normalise_email
from creditpool.storage.ids import digest_secret, new_id, new_secret, secret_matches
from creditpool.storage.schema import PersonalToken, User, UserLink
from creditpool.storage.unit_of_work import UnitOfWork

RESET_LIFETIME = timedelta(hours=1)
VERIFY_LIFETIME = timedelta(days=7)
RESET_MAILS_PER_HOUR = 5


class LinkPurpose(StrEnum):
    """What a mailed link does."""

    RESET = "reset"
    VERIFY = "verify"


_PATHS = {LinkPurpose.RESET: "password-reset", LinkPurpose.VERIFY: "verify-email"}
_LIFETIMES = {LinkPurpose.RESET: RESET_LIFETIME, LinkPurpose.VERIFY: VERIFY_LIFETIME}


def _new_link(uow: UnitOfWork, user: User, purpose: LinkPurpose, public_url: str) -> str:
    """Add a link for `user` inside the open transaction; return its URL."""
    link_id, secret = new_id("lnk"), new_secret()
    uow.session.add(
        UserLink(
            id=link_id,
            user_id=user.id,
            purpose=purpose.value,
            email=user.email,
            secret_hash=digest_secret(secret),
            created_at=uow.now,
            expires_at=uow.now + _LIFETIMES[purpose],
        )
    )
    return f"{public_url.rstrip('/')}/{_PATHS[purpose]}/{link_id}.{secret}"


def mail_verification(uow: UnitOfWork, user: User, public_url: str) -> None:
    """Put a confirmation link for the user's address in the outbox, in the open transaction."""
    link = _new_link(uow, user, LinkPurpose.VERIFY, public_url)
    mail.enqueue(
        uow,
        org_id="",
        to_address=user.email,
        subject="Confirm your e-mail address for creditpool",
        body=(
            f"Hello {user.name},\n\nPlease confirm that this address is yours:\n{mail.LINK}\n\n"
            f"The link works once, for {VERIFY_LIFETIME.days} days. If you did not sign up for "
            "creditpool, ignore this message.\n"
        ),
        secret_link=link,
    )


def send_verification(uow: UnitOfWork, user_id: str, *, public_url: str) -> None:
    """Mail the user a new link that confirms their address (unless it is confirmed)."""

    def apply() -> None:
        user = uow.session.get(User, user_id)
        if user is None:
            raise NotFound(f"no user {user_id}")
        if not user.email_verified:
            mail_verification(uow, user, public_url)

    run_write(uow, apply)


def request_password_reset(uow: UnitOfWork, email: str, *, public_url: str) -> None:
    """Mail a reset link if the address has an account; answer the same either way."""
    try:
        address = normalise_email(email)
    except InvalidInput:
        return  # no account can have it: the same answer as for an unknown address
    try:
        rate_limits.hit(
            uow,
            rate_limits.bucket_of("reset-mail", address),
            rate_limits.Limit(RESET_MAILS_PER_HOUR, timedelta(hours=1)),
        )
    except RateLimited:
        return  # enough mail to this address for now: the same answer, nothing sent

    def apply() -> None:
        user = uow.session.scalars(select(User).where(User.email == address)).one_or_none()
        if user is None:
            return
        _spend_unused(uow, user.id, LinkPurpose.RESET)  # only the newest link works
        link = _new_link(uow, user, LinkPurpose.RESET, public_url)
        mail.enqueue(
            uow,
            org_id="",
            to_address=user.email,
            subject="Reset your creditpool password",
            body=(
                f"Hello {user.name},\n\nSomeone (we hope you) asked to reset the password of "
                f"your creditpool account. Choose a new one here:\n{mail.LINK}\n\n"
                "The link works once, for an hour. If you did not ask, ignore this message: "
                "your password stays as it is.\n"
            ),
            secret_link=link,
        )

    run_write(uow, apply)


def _live_link(uow: UnitOfWork, token: str, purpose: LinkPurpose) -> tuple[UserLink, User]:
    link_id, _, secret = token.partition(".")
    link = uow.session.get(UserLink, link_id) if link_id.isascii() and secret else None
    gone = NotFound("this link is unknown, used or expired")
    if link is None or link.purpose != purpose.value or link.used_at is not None:
        raise gone
    expires_at = link.expires_at
    if expires_at.tzinfo is None:  # SQLite hands back naive UTC
        expires_at = expires_at.replace(tzinfo=UTC)
    if uow.now >= expires_at or not secret_matches(secret, link.secret_hash):
        raise gone
    user = uow.session.get(User, link.user_id)
    if user is None or user.email != link.email:
        raise gone  # the address changed since the link was sent
    return link, user


def _spend(uow: UnitOfWork, link: UserLink) -> None:
    """Mark the link used, unless a concurrent use got there first (then NotFound)."""
    spent = uow.session.execute(
        update(UserLink)
        .where(UserLink.id == link.id, UserLink.used_at.is_(None))
        .values(used_at=uow.now)
        .execution_options(synchronize_session=False)
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        raise NotFound("this link is unknown, used or expired")


def _spend_unused(uow: UnitOfWork, user_id: str, purpose: LinkPurpose) -> None:
    uow.session.execute(
        update(UserLink)
        .where(
            UserLink.user_id == user_id,
            UserLink.purpose == purpose.value,
            UserLink.used_at.is_(None),
        )
        .values(used_at=uow.now)
        .execution_options(synchronize_session=False)
    )


def check_reset_link(uow: UnitOfWork, token: str) -> str:
    """Return the address a live reset link is for; NotFound for an unknown, used or expired one."""
    with uow:
        _, user = _live_link(uow, token, LinkPurpose.RESET)
        return user.email


def reset_password(uow: UnitOfWork, token: str, *, password: str) -> str:
    """Set a new password from a reset link, spend the link, and end every session of the
    person; return the user's id."""
    with uow:
        _live_link(uow, token, LinkPurpose.RESET)  # a bad link costs no hashing
    new_hash = hash_password(password)  # outside the transaction: Argon2 is slow on purpose

    def apply() -> tuple[str, str]:
        link, user = _live_link(uow, token, LinkPurpose.RESET)
        _spend(uow, link)
        user.password_hash = new_hash
        # Whoever asked for the link proved the mailbox: the address is confirmed too.
        user.email_verified = True
        end_sessions_in(uow, user.id)
        uow.session.execute(
            update(PersonalToken)
            .where(PersonalToken.user_id == user.id, PersonalToken.revoked_at.is_(None))
            .values(revoked_at=uow.now)
        )
        return user.id, user.email

    user_id, email = run_write(uow, apply)
    rate_limits.forgive(uow, rate_limits.address_bucket(email))  # the lock-out ends too
    return user_id


def verify_email(uow: UnitOfWork, token: str) -> str:
    """Mark the address a confirmation link was sent to as confirmed; return the user's id."""

    def apply() -> str:
        link, user = _live_link(uow, token, LinkPurpose.VERIFY)
        _spend(uow, link)
        user.email_verified = True
        return user.id

    return run_write(uow, apply)


def forget_old_links(uow: UnitOfWork) -> int:
    """Delete links that expired a day or more ago, used or not; return how many."""

    def forget() -> int:
        result = uow.session.execute(
            delete(UserLink).where(UserLink.expires_at < uow.now - timedelta(days=1))
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    return run_write(uow, forget)
