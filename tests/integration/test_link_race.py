"""A mailed link used twice at the same moment works once, on PostgreSQL, where two READ
COMMITTED transactions can both read the link unused (SQLite's BEGIN IMMEDIATE serialises
them anyway). These tests commit for real, on an engine of their own, with unique e-mails."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select

from creditpool.domain.errors import NotFound
from creditpool.services import user_links, users
from creditpool.storage.database import create_database_engine
from creditpool.storage.schema import MailMessage, UserLink
from creditpool.storage.unit_of_work import UnitOfWork

PUBLIC_URL = "http://creditpool.test"


@pytest.fixture
def pg_engine(postgresql_url: str) -> Iterator[Engine]:
    """An engine with a connection for each of the two racing threads."""
    engine = create_database_engine(postgresql_url, pool_size=4)
    yield engine
    engine.dispose()


@pytest.mark.postgres_only
def test_a_reset_link_used_twice_at_once_sets_one_password(
    pg_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    email = f"race-{uuid.uuid4().hex[:12]}@example.test"
    uow = UnitOfWork.for_engine(pg_engine)
    user = users.create_user(uow, email=email, name="Racer", password="the first password")
    user_links.request_password_reset(uow, email, public_url=PUBLIC_URL)
    with uow:
        link = uow.session.scalars(
            select(MailMessage.secret_link).where(MailMessage.to_address == email)
        ).one()
    assert link is not None
    token = link.rpartition("/")[2]

    # Both uses read the link as unused before either writes: the race, made certain.
    both_read = threading.Barrier(2, timeout=10)
    live_link = user_links._live_link

    def read_then_wait(*arguments: object, **keywords: object) -> object:
        found = live_link(*arguments, **keywords)  # type: ignore[arg-type]
        if threading.current_thread().name.startswith("reset-"):
            # Each use reads the link twice (before hashing, then to spend it): both threads
            # meet here each time. Should one never come, the other goes on after the timeout.
            with contextlib.suppress(threading.BrokenBarrierError):
                both_read.wait()
        return found

    monkeypatch.setattr(user_links, "_live_link", read_then_wait)
    outcomes: dict[str, str] = {}

    def use(password: str) -> None:
        try:
            user_links.reset_password(UnitOfWork.for_engine(pg_engine), token, password=password)
            outcomes[password] = "set"
        except NotFound:
            outcomes[password] = "refused"

    threads = [
        threading.Thread(target=use, args=(password,), name=f"reset-{number}")
        for number, password in enumerate(("password one", "password two"))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes.values()) == ["refused", "set"]
    chosen = next(password for password, outcome in outcomes.items() if outcome == "set")
    assert users.authenticate(uow, email=email, password=chosen).id == user.id
    with uow:
        used = uow.session.scalars(select(UserLink.used_at).where(UserLink.user_id == user.id))
        assert all(moment is not None for moment in used)
