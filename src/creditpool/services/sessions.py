"""Signed-in browsers, revocable on the server.

Signing in makes a WebSession row and hands the browser `<session id>.<secret>`; the row keeps
only the secret's SHA-256. A session is live while it has not been ended (signing out, "sign
out everywhere", a password change or reset), has been used within the idle limit, and is
younger than its absolute lifetime. So a copied cookie stops working once its session ends,
whatever the cookie's own signature says.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, or_

from creditpool.domain.errors import NotFound
from creditpool.services.transactions import run_write
from creditpool.services.users import UserView, end_sessions_in, get_user, user_view
from creditpool.storage.ids import digest_secret, new_id, new_secret, secret_matches
from creditpool.storage.schema import User, WebSession
from creditpool.storage.unit_of_work import UnitOfWork

# Writing last_seen_at on every page would make every read a write; once a minute is enough.
LAST_SEEN_RESOLUTION = timedelta(minutes=1)
# A dead session's row is kept a day (to answer "why was I signed out?"), then deleted.
FORGET_AFTER = timedelta(days=1)


@dataclass(frozen=True)
class SignedIn:
    """A live session and the person it belongs to."""

    session_id: str
    user: UserView


def start_session(uow: UnitOfWork, user_id: str, *, lifetime: timedelta) -> str:
    """Open a new session for the user; return the token the browser keeps (shown once)."""
    get_user(uow, user_id)  # NotFound for a user that is not there

    def apply() -> str:
        session_id, secret = new_id("ses"), new_secret()
        uow.session.add(
            WebSession(
                id=session_id,
                user_id=user_id,
                secret_hash=digest_secret(secret),
                created_at=uow.now,
                last_seen_at=uow.now,
                expires_at=uow.now + lifetime,
            )
        )
        return f"{session_id}.{secret}"

    return run_write(uow, apply)


def resume_session(uow: UnitOfWork, token: str, *, idle: timedelta) -> SignedIn | None:
    """Return the live session this token names and its user, or None if it is not live."""
    session_id, _, secret = token.partition(".")
    if not secret or not session_id.isascii():
        return None

    def apply() -> SignedIn | None:
        row = uow.session.get(WebSession, session_id)
        if (
            row is None
            or row.ended_at is not None
            or uow.now >= row.expires_at
            or uow.now - row.last_seen_at > idle
            or not secret_matches(secret, row.secret_hash)
        ):
            return None
        user = uow.session.get(User, row.user_id)
        if user is None:
            return None
        if uow.now - row.last_seen_at >= LAST_SEEN_RESOLUTION:
            row.last_seen_at = uow.now
        return SignedIn(row.id, user_view(user))

    return run_write(uow, apply)


def end_session(uow: UnitOfWork, session_id: str) -> None:
    """End one session (signing out): its cookie is refused from now on."""

    def apply() -> None:
        row = uow.session.get(WebSession, session_id)
        if row is None:
            raise NotFound(f"no session {session_id}")
        row.ended_at = row.ended_at or uow.now

    run_write(uow, apply)


def end_all_sessions(uow: UnitOfWork, user_id: str) -> None:
    """End every session of the user, in every browser ("sign out everywhere")."""
    run_write(uow, lambda: end_sessions_in(uow, user_id))


def forget_dead_sessions(uow: UnitOfWork, *, idle: timedelta) -> int:
    """Delete sessions that can never be used again (ended, idle too long, or past their
    lifetime) for a day or more; return how many."""

    def apply() -> int:
        day_ago = uow.now - FORGET_AFTER
        result = uow.session.execute(
            delete(WebSession).where(
                or_(
                    WebSession.ended_at < day_ago,
                    WebSession.expires_at < day_ago,
                    WebSession.last_seen_at < day_ago - idle,
                )
            )
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    return run_write(uow, apply)
