"""Passwords, sessions and mailed links, on both engines: what costs a hash and what does not,
how long a session lives, and what ends it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from creditpool.config import Config
from creditpool.domain.errors import (
    AlreadyExists,
    Forbidden,
    NotFound,
    RateLimited,
    Unauthenticated,
)
from creditpool.services import mail, rate_limits, sessions, user_links, users
from creditpool.storage.schema import MailMessage, RateLimit, UserLink, WebSession
from creditpool.storage.unit_of_work import UnitOfWork
from creditpool.worker import run_once
from tests.support.clock import FakeClock

PASSWORD = "correct horse battery"
PUBLIC_URL = "http://creditpool.test"
IDLE = timedelta(hours=24)
LIFETIME = timedelta(days=14)
LIMIT = rate_limits.FailedPasswords(rate_limits.Limit(3, timedelta(minutes=15)), "198.51.100.1")
ELSEWHERE = rate_limits.FailedPasswords(LIMIT.limit, "203.0.113.50")


class CountingHasher:
    """The real Argon2 hasher (cheap parameters), counting what it is asked to do."""

    def __init__(self) -> None:
        self.real = PasswordHasher(time_cost=1, memory_cost=1024)
        self.hashes = 0
        self.verifies = 0

    def hash(self, password: str) -> str:
        self.hashes += 1
        return self.real.hash(password)

    def verify(self, stored: str, password: str) -> bool:
        self.verifies += 1
        return self.real.verify(stored, password)

    def check_needs_rehash(self, stored: str) -> bool:
        return self.real.check_needs_rehash(stored)

    def reset(self) -> None:
        self.hashes = self.verifies = 0


@pytest.fixture
def hasher(monkeypatch: pytest.MonkeyPatch) -> CountingHasher:
    counting = CountingHasher()
    monkeypatch.setattr(users, "_hasher", counting)
    return counting


def sign_up(uow: UnitOfWork, email: str = "ada@example.test") -> users.UserView:
    return users.create_user(uow, email=email, name="Ada", password=PASSWORD)


def test_a_taken_email_is_refused_before_any_password_is_hashed(
    uow: UnitOfWork, hasher: CountingHasher
) -> None:
    sign_up(uow)
    assert hasher.hashes == 1
    hasher.reset()
    with pytest.raises(AlreadyExists) as refused:
        users.create_user(uow, email="ADA@example.test", name="Someone", password="another one")
    assert hasher.hashes == 0
    assert "ada@example.test" not in refused.value.detail  # the refusal names no address


def test_an_unknown_email_costs_one_argon2_check_like_a_wrong_password(
    uow: UnitOfWork, hasher: CountingHasher
) -> None:
    sign_up(uow)
    hasher.reset()
    with pytest.raises(Unauthenticated):
        users.authenticate(uow, email="ada@example.test", password="wrong password")
    assert hasher.verifies == 1
    with pytest.raises(Unauthenticated):
        users.authenticate(uow, email="nobody@example.test", password="wrong password")
    assert hasher.verifies == 2  # the dummy hash was checked, at the same cost
    # Even the dummy hash's own password opens nothing.
    with pytest.raises(Unauthenticated):
        users.authenticate(uow, email="nobody@example.test", password="not anyone's password")


def test_a_locked_address_is_refused_before_any_hashing_until_its_window_ends(
    uow: UnitOfWork, hasher: CountingHasher, clock: FakeClock
) -> None:
    sign_up(uow)
    clock.advance(minutes=2)  # 00:02, inside the window 00:00-00:15
    for _ in range(LIMIT.limit.hits):
        with pytest.raises(Unauthenticated):
            users.authenticate(
                uow, email="ada@example.test", password="guess", password_limit=LIMIT
            )
    hasher.reset()
    # Locked: even the right password is refused, and nothing is hashed or checked.
    with pytest.raises(RateLimited) as locked:
        users.authenticate(uow, email="Ada@Example.test", password=PASSWORD, password_limit=LIMIT)
    assert (hasher.hashes, hasher.verifies) == (0, 0)
    assert locked.value.retry_after == 13 * 60  # until 00:15, the end of the window
    # Another address is not locked.
    with pytest.raises(Unauthenticated):
        users.authenticate(uow, email="bo@example.test", password="guess", password_limit=LIMIT)
    # The lock lasts at most the window: at 00:15 the right password works again.
    clock.advance(minutes=13)
    user = users.authenticate(
        uow, email="ada@example.test", password=PASSWORD, password_limit=LIMIT
    )
    assert user.email == "ada@example.test"


def test_a_success_forgets_earlier_failures(uow: UnitOfWork, clock: FakeClock) -> None:
    sign_up(uow)
    for _ in range(LIMIT.limit.hits - 1):
        with pytest.raises(Unauthenticated):
            users.authenticate(uow, email="ada@example.test", password="typo", password_limit=LIMIT)
    users.authenticate(uow, email="ada@example.test", password=PASSWORD, password_limit=LIMIT)
    for _ in range(LIMIT.limit.hits - 1):
        with pytest.raises(Unauthenticated):
            users.authenticate(uow, email="ada@example.test", password="typo", password_limit=LIMIT)
    users.authenticate(uow, email="ada@example.test", password=PASSWORD, password_limit=LIMIT)


def test_rate_limit_buckets_keep_no_address_readable_and_old_windows_are_purged(
    uow: UnitOfWork, clock: FakeClock
) -> None:
    with pytest.raises(Unauthenticated):
        users.authenticate(uow, email="ada@example.test", password="x", password_limit=LIMIT)
    bucket = rate_limits.bucket_of("anonymous", "203.0.113.9")
    rate_limits.hit(uow, bucket, rate_limits.Limit(5, timedelta(minutes=1)))
    with uow:
        stored = list(uow.session.scalars(select(RateLimit.bucket)))
    assert len(stored) == 3  # the address from this client, the address, the client address
    for name in stored:
        assert len(name) == 64
        assert "ada" not in name
        assert "203" not in name
    clock.advance(minutes=14)
    assert rate_limits.purge_old_windows(uow) == 0  # the 15-minute window is still open
    clock.advance(minutes=16)
    assert rate_limits.purge_old_windows(uow) == 3
    with uow:
        assert list(uow.session.scalars(select(RateLimit))) == []


def test_fixed_windows_count_and_say_when_they_end(uow: UnitOfWork, clock: FakeClock) -> None:
    limit = rate_limits.Limit(2, timedelta(minutes=1))
    bucket = rate_limits.bucket_of("anonymous", "198.51.100.7")
    clock.advance(seconds=20)
    assert rate_limits.hit(uow, bucket, limit) == 1
    assert rate_limits.hit(uow, bucket, limit) == 2
    with pytest.raises(RateLimited) as refused:
        rate_limits.hit(uow, bucket, limit)
    assert refused.value.retry_after == 40
    clock.advance(seconds=40)  # a new window
    assert rate_limits.hit(uow, bucket, limit) == 1


def test_a_session_lives_while_used_and_ends_idle_or_at_its_lifetime(
    uow: UnitOfWork, clock: FakeClock
) -> None:
    user = sign_up(uow)
    token = sessions.start_session(uow, user.id, lifetime=LIFETIME)
    live = sessions.resume_session(uow, token, idle=IDLE)
    assert live is not None
    assert live.user.id == user.id
    # A wrong secret for the same session id is nothing.
    session_id = token.partition(".")[0]
    assert sessions.resume_session(uow, f"{session_id}.forged", idle=IDLE) is None

    # Idle for longer than the limit: gone, and stays gone.
    clock.advance(hours=24, seconds=1)
    assert sessions.resume_session(uow, token, idle=IDLE) is None

    # Used every 23 hours it lives on, but never past its lifetime.
    token = sessions.start_session(uow, user.id, lifetime=LIFETIME)
    for _ in range(14):  # 14 x 23 h = 322 h, short of the 336 h lifetime
        clock.advance(hours=23)
        assert sessions.resume_session(uow, token, idle=IDLE) is not None
    clock.advance(hours=14)  # 336 h after it started: its absolute end
    assert sessions.resume_session(uow, token, idle=IDLE) is None


def test_last_seen_moves_at_most_once_a_minute(uow: UnitOfWork, clock: FakeClock) -> None:
    user = sign_up(uow)
    token = sessions.start_session(uow, user.id, lifetime=LIFETIME)
    session_id = token.partition(".")[0]
    started = clock.now()
    clock.advance(seconds=30)
    sessions.resume_session(uow, token, idle=IDLE)
    with uow:
        row = uow.session.get(WebSession, session_id)
        assert row is not None
        assert row.last_seen_at == started
    clock.advance(seconds=31)
    sessions.resume_session(uow, token, idle=IDLE)
    with uow:
        row = uow.session.get(WebSession, session_id)
        assert row is not None
        assert row.last_seen_at == clock.now()


def test_signing_out_and_signing_out_everywhere_end_sessions(uow: UnitOfWork) -> None:
    user = sign_up(uow)
    laptop = sessions.start_session(uow, user.id, lifetime=LIFETIME)
    phone = sessions.start_session(uow, user.id, lifetime=LIFETIME)
    sessions.end_session(uow, laptop.partition(".")[0])
    assert sessions.resume_session(uow, laptop, idle=IDLE) is None
    assert sessions.resume_session(uow, phone, idle=IDLE) is not None
    sessions.end_all_sessions(uow, user.id)
    assert sessions.resume_session(uow, phone, idle=IDLE) is None


def test_changing_the_password_ends_every_other_session(
    uow: UnitOfWork, hasher: CountingHasher
) -> None:
    user = sign_up(uow)
    here = sessions.start_session(uow, user.id, lifetime=LIFETIME)
    elsewhere = sessions.start_session(uow, user.id, lifetime=LIFETIME)
    with pytest.raises(Forbidden):
        users.change_password(
            uow,
            user.id,
            current_password="wrong",
            new_password="a new long password",
            keep_session=here.partition(".")[0],
        )
    assert sessions.resume_session(uow, elsewhere, idle=IDLE) is not None
    users.change_password(
        uow,
        user.id,
        current_password=PASSWORD,
        new_password="a new long password",
        keep_session=here.partition(".")[0],
    )
    assert sessions.resume_session(uow, here, idle=IDLE) is not None
    assert sessions.resume_session(uow, elsewhere, idle=IDLE) is None
    users.authenticate(uow, email=user.email, password="a new long password")
    with pytest.raises(Unauthenticated):
        users.authenticate(uow, email=user.email, password=PASSWORD)


def test_a_wrong_current_password_counts_as_a_failed_check(uow: UnitOfWork) -> None:
    user = sign_up(uow)
    for _ in range(LIMIT.limit.hits):
        with pytest.raises(Forbidden):
            users.change_password(
                uow,
                user.id,
                current_password="guess",
                new_password="a new long password",
                password_limit=LIMIT,
            )
    with pytest.raises(RateLimited):
        users.authenticate(uow, email=user.email, password=PASSWORD, password_limit=LIMIT)


def test_set_password_ends_every_session(uow: UnitOfWork) -> None:
    user = sign_up(uow)
    token = sessions.start_session(uow, user.id, lifetime=LIFETIME)
    users.set_password(uow, "ADA@example.test", "set by the operator")
    assert sessions.resume_session(uow, token, idle=IDLE) is None
    users.authenticate(uow, email=user.email, password="set by the operator")
    with pytest.raises(NotFound):
        users.set_password(uow, "nobody@example.test", "set by the operator")


def _link_of(uow: UnitOfWork, address: str) -> str:
    """The link of the newest message to `address`, as the mail server will get it."""
    with uow:
        message = uow.session.scalars(
            select(MailMessage)
            .where(MailMessage.to_address == address)
            .order_by(MailMessage.id.desc())
        ).first()
        assert message is not None
        assert message.secret_link is not None
        assert mail.LINK in message.body
        assert message.secret_link not in message.body
        return message.secret_link


def test_a_reset_link_works_once_within_an_hour_and_ends_every_session(
    uow: UnitOfWork, clock: FakeClock
) -> None:
    user = sign_up(uow)
    token = sessions.start_session(uow, user.id, lifetime=LIFETIME)
    # Unknown and malformed addresses are answered the same, and mail nothing.
    user_links.request_password_reset(uow, "nobody@example.test", public_url=PUBLIC_URL)
    user_links.request_password_reset(uow, "not an address", public_url=PUBLIC_URL)
    with uow:
        assert list(uow.session.scalars(select(UserLink))) == []

    user_links.request_password_reset(uow, "Ada@Example.test", public_url=PUBLIC_URL)
    link = _link_of(uow, "ada@example.test")
    assert link.startswith(f"{PUBLIC_URL}/password-reset/")
    secret = link.rpartition("/")[2]
    with uow:
        [row] = uow.session.scalars(select(UserLink))
        assert row.purpose == "reset"
        assert secret.partition(".")[2] not in row.secret_hash
    assert user_links.check_reset_link(uow, secret) == "ada@example.test"

    user_links.reset_password(uow, secret, password="chosen anew")
    assert sessions.resume_session(uow, token, idle=IDLE) is None
    users.authenticate(uow, email=user.email, password="chosen anew")
    with pytest.raises(NotFound):  # single use
        user_links.reset_password(uow, secret, password="chosen again")

    user_links.request_password_reset(uow, "ada@example.test", public_url=PUBLIC_URL)
    late = _link_of(uow, "ada@example.test").rpartition("/")[2]
    clock.advance(hours=1)
    with pytest.raises(NotFound):  # an hour later it has expired
        user_links.reset_password(uow, late, password="too late now")
    with pytest.raises(NotFound):  # a forged secret for a real link id
        user_links.check_reset_link(uow, late.partition(".")[0] + ".forged")


def test_sign_up_can_mail_a_confirmation_link_good_for_seven_days(
    uow: UnitOfWork, clock: FakeClock
) -> None:
    user = users.create_user(
        uow,
        email="bo@example.test",
        name="Bo",
        password=PASSWORD,
        on_created=lambda row: user_links.mail_verification(uow, row, PUBLIC_URL),
    )
    assert not user.email_verified
    first = _link_of(uow, "bo@example.test").rpartition("/")[2]
    clock.advance(days=7)
    with pytest.raises(NotFound):
        user_links.verify_email(uow, first)
    user_links.send_verification(uow, user.id, public_url=PUBLIC_URL)
    again = _link_of(uow, "bo@example.test")
    assert again.startswith(f"{PUBLIC_URL}/verify-email/")
    user_links.verify_email(uow, again.rpartition("/")[2])
    assert users.get_user(uow, user.id).email_verified
    with pytest.raises(NotFound):  # single use
        user_links.verify_email(uow, again.rpartition("/")[2])
    # A reset link does not confirm through the verify path, nor the other way round.
    user_links.request_password_reset(uow, "bo@example.test", public_url=PUBLIC_URL)
    reset = _link_of(uow, "bo@example.test").rpartition("/")[2]
    with pytest.raises(NotFound):
        user_links.verify_email(uow, reset)


def test_the_worker_forgets_windows_older_than_the_longest(
    uow: UnitOfWork, clock: FakeClock
) -> None:
    minute = rate_limits.Limit(5, timedelta(minutes=1))
    rate_limits.hit(uow, rate_limits.bucket_of("anonymous", "192.0.2.1"), minute)
    clock.advance(minutes=15)
    rate_limits.hit(uow, rate_limits.bucket_of("anonymous", "192.0.2.2"), minute)
    clock.advance(seconds=1)
    run_once(uow, Config(rate_limits=True))
    with uow:
        assert len(list(uow.session.scalars(select(RateLimit.bucket)))) == 1


def test_each_attempt_counts_before_its_password_is_checked(
    uow: UnitOfWork, hasher: CountingHasher
) -> None:
    # Guesses sent at the same moment must not all pass a check made before any is counted:
    # by the time a password is verified, its attempt is on the counter already.
    sign_up(uow)
    counted_at_verify: list[int] = []
    verify = hasher.verify

    def verify_and_look(stored: str, password: str) -> bool:
        with uow:
            counted_at_verify.append(
                sum(uow.session.scalars(select(RateLimit.hits)))  # every bucket of the attempt
            )
        return verify(stored, password)

    hasher.verify = verify_and_look  # type: ignore[method-assign]
    with pytest.raises(Unauthenticated):
        users.authenticate(uow, email="ada@example.test", password="guess", password_limit=LIMIT)
    assert counted_at_verify == [2]  # this client's count and the address's, both already one


def test_guessing_from_one_client_locks_out_only_that_client(uow: UnitOfWork) -> None:
    sign_up(uow)
    for _ in range(LIMIT.limit.hits):
        with pytest.raises(Unauthenticated):
            users.authenticate(uow, email="ada@example.test", password="x", password_limit=LIMIT)
    with pytest.raises(RateLimited):
        users.authenticate(uow, email="ada@example.test", password=PASSWORD, password_limit=LIMIT)
    # Ada, at her own address, signs in as usual.
    assert users.authenticate(
        uow, email="ada@example.test", password=PASSWORD, password_limit=ELSEWHERE
    )


def test_an_address_guessed_from_everywhere_locks_until_a_reset_lifts_it(
    uow: UnitOfWork,
) -> None:
    sign_up(uow)
    cap = LIMIT.limit.hits * rate_limits.ADDRESS_CAP_FACTOR
    for number in range(cap):
        client = rate_limits.FailedPasswords(LIMIT.limit, f"192.0.2.{number}")
        with pytest.raises(Unauthenticated):
            users.authenticate(uow, email="ada@example.test", password="x", password_limit=client)
    # Locked for every client now, Ada's too...
    with pytest.raises(RateLimited):
        users.authenticate(
            uow, email="ada@example.test", password=PASSWORD, password_limit=ELSEWHERE
        )
    # ...until she resets her password through her mailbox.
    user_links.request_password_reset(uow, "ada@example.test", public_url=PUBLIC_URL)
    secret = _link_of(uow, "ada@example.test").rpartition("/")[2]
    user_links.reset_password(uow, secret, password="chosen anew")
    assert users.authenticate(
        uow, email="ada@example.test", password="chosen anew", password_limit=ELSEWHERE
    )


def test_a_reset_revokes_personal_tokens_and_only_the_newest_link_works(
    uow: UnitOfWork,
) -> None:
    from creditpool.services import auth

    sign_up(uow)
    issued = auth.issue_personal_token(uow, email="ada@example.test", password=PASSWORD)
    assert auth.identify(uow, issued.secret, configured_operator_key=None).user_id
    user_links.request_password_reset(uow, "ada@example.test", public_url=PUBLIC_URL)
    older = _link_of(uow, "ada@example.test").rpartition("/")[2]
    user_links.request_password_reset(uow, "ada@example.test", public_url=PUBLIC_URL)
    newest = _link_of(uow, "ada@example.test").rpartition("/")[2]
    with pytest.raises(NotFound):
        user_links.check_reset_link(uow, older)

    user_links.reset_password(uow, newest, password="chosen anew")
    with pytest.raises(Unauthenticated):  # whoever had the account may have made it
        auth.identify(uow, issued.secret, configured_operator_key=None)


def test_reset_mail_to_one_address_is_bounded(uow: UnitOfWork, clock: FakeClock) -> None:
    sign_up(uow)
    for _ in range(user_links.RESET_MAILS_PER_HOUR + 3):
        user_links.request_password_reset(uow, "ada@example.test", public_url=PUBLIC_URL)
    with uow:
        resets = uow.session.scalars(select(UserLink).where(UserLink.purpose == "reset"))
        assert len(list(resets)) == user_links.RESET_MAILS_PER_HOUR
    clock.advance(hours=1)
    user_links.request_password_reset(uow, "ada@example.test", public_url=PUBLIC_URL)
    with uow:
        resets = uow.session.scalars(select(UserLink).where(UserLink.purpose == "reset"))
        assert len(list(resets)) == user_links.RESET_MAILS_PER_HOUR + 1


def test_the_worker_forgets_sessions_and_links_that_can_never_work_again(
    uow: UnitOfWork, clock: FakeClock
) -> None:
    user = sign_up(uow)
    ended = sessions.start_session(uow, user.id, lifetime=LIFETIME)
    sessions.end_session(uow, ended.partition(".")[0])
    idle = sessions.start_session(uow, user.id, lifetime=LIFETIME)
    user_links.request_password_reset(uow, user.email, public_url=PUBLIC_URL)
    clock.advance(hours=23)
    kept = sessions.start_session(uow, user.id, lifetime=LIFETIME)
    run_once(uow, Config(session_idle=IDLE))  # the ended one is not a day dead yet
    with uow:
        assert len(list(uow.session.scalars(select(WebSession.id)))) == 3
    clock.advance(hours=3)  # 26 hours: the reset link (an hour) expired over a day ago
    run_once(uow, Config(session_idle=IDLE))
    with uow:
        assert set(uow.session.scalars(select(WebSession.id))) == {
            idle.partition(".")[0],  # idle 26 hours: dead, but not for a whole day yet
            kept.partition(".")[0],
        }
        assert (
            list(uow.session.scalars(select(UserLink.id).where(UserLink.purpose == "reset"))) == []
        )
    clock.advance(days=1)
    run_once(uow, Config(session_idle=IDLE))
    with uow:
        assert set(uow.session.scalars(select(WebSession.id))) == {kept.partition(".")[0]}
