"""Personal tokens that are named and expire, and the operator's powers taken back, on both
engines. The clock is moved by hand: a token asked to last an hour works for 59 minutes 59
seconds and is refused from the hour on, like a revoked one."""

from __future__ import annotations

from datetime import timedelta

import pytest

from creditpool.domain.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from creditpool.services import auth, operators, users
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.clock import START, FakeClock

PASSWORD = "a long enough secret"


def _tess(uow: UnitOfWork) -> users.UserView:
    return users.create_user(uow, email="tess@school.test", name="Tess", password=PASSWORD)


def _issue(
    uow: UnitOfWork, *, name: str = "", expires_in: timedelta | None = None
) -> auth.IssuedToken:
    return auth.issue_personal_token(
        uow, email="tess@school.test", password=PASSWORD, name=name, expires_in=expires_in
    )


def _identify(uow: UnitOfWork, bearer: str) -> auth.Principal:
    return auth.identify(uow, bearer, configured_operator_key=None)


def test_a_token_expires_at_its_instant_and_is_then_refused_and_unlisted(
    uow: UnitOfWork, clock: FakeClock
) -> None:
    tess = _tess(uow)
    hourly = _issue(uow, name="  CI runner  ", expires_in=timedelta(hours=1))
    lasting = _issue(uow)
    assert (hourly.name, hourly.expires_at) == ("CI runner", START + timedelta(hours=1))
    assert (lasting.name, lasting.expires_at) == ("", None)

    clock.advance(minutes=59, seconds=59)
    assert _identify(uow, hourly.secret).user_id == tess.id
    listed = auth.list_personal_tokens(uow, tess.id)
    assert [(t.id, t.name, t.expires_at) for t in listed] == [
        (hourly.id, "CI runner", START + timedelta(hours=1)),
        (lasting.id, "", None),
    ]
    assert listed[0].last_used_at == START + timedelta(minutes=59, seconds=59)
    assert listed[1].last_used_at is None

    clock.advance(seconds=1)  # exactly the hour
    with pytest.raises(Unauthenticated):
        _identify(uow, hourly.secret)
    assert [t.id for t in auth.list_personal_tokens(uow, tess.id)] == [lasting.id]
    clock.advance(days=400)
    assert _identify(uow, lasting.secret).user_id == tess.id  # no expiry asked: none


def test_a_lifetime_is_a_minute_to_a_year_and_a_refused_one_makes_no_token(
    uow: UnitOfWork,
) -> None:
    tess = _tess(uow)
    for wrong in (timedelta(seconds=59), timedelta(days=365, seconds=1), timedelta(0)):
        with pytest.raises(InvalidInput):
            _issue(uow, expires_in=wrong)
    with pytest.raises(InvalidInput):
        _issue(uow, name="x" * 201)
    assert auth.list_personal_tokens(uow, tess.id) == []
    shortest = _issue(uow, expires_in=timedelta(seconds=60))
    longest = _issue(uow, expires_in=timedelta(days=365))
    assert shortest.expires_at == START + timedelta(minutes=1)
    assert longest.expires_at == START + timedelta(days=365)


def test_listing_shows_only_the_users_live_tokens_in_pages(uow: UnitOfWork) -> None:
    tess = _tess(uow)
    users.create_user(uow, email="omar@school.test", name="Omar", password=PASSWORD)
    auth.issue_personal_token(uow, email="omar@school.test", password=PASSWORD)
    mine = [_issue(uow, name=f"token {number}") for number in range(3)]
    auth.revoke_personal_token(uow, user_id=tess.id, token_id=mine[1].id)

    first = auth.list_personal_tokens(uow, tess.id, limit=1)
    rest = auth.list_personal_tokens(uow, tess.id, after=first[0].id)
    assert [t.name for t in first + rest] == ["token 0", "token 2"]


def test_a_revoked_operator_key_stops_at_once_and_stays_listed_as_revoked(
    uow: UnitOfWork, clock: FakeClock
) -> None:
    billing = operators.create_operator_key(uow, name="billing")
    spare = operators.create_operator_key(uow, name="spare")
    assert _identify(uow, billing.secret).operator

    clock.advance(minutes=5)
    revoked = operators.revoke_operator_key(uow, billing.id)
    assert revoked.revoked_at == START + timedelta(minutes=5)
    with pytest.raises(Unauthenticated):
        _identify(uow, billing.secret)
    assert _identify(uow, spare.secret).operator

    listed = operators.list_operator_keys(uow)
    assert [(k.id, k.name, k.revoked_at) for k in listed] == [
        (billing.id, "billing", START + timedelta(minutes=5)),
        (spare.id, "spare", None),
    ]
    assert listed[0].last_used_at == START  # used once, before it was revoked
    assert [k.id for k in operators.list_operator_keys(uow, include_revoked=False)] == [spare.id]
    clock.advance(minutes=5)
    again = operators.revoke_operator_key(uow, billing.id)  # harmless, keeps the first instant
    assert again.revoked_at == START + timedelta(minutes=5)
    with pytest.raises(NotFound):
        operators.revoke_operator_key(uow, "opk_nothing")


def test_operator_powers_are_taken_back_but_never_by_oneself_from_the_pages(
    uow: UnitOfWork,
) -> None:
    vera = users.create_user(uow, email="vera@vendor.test", name="Vera", password=PASSWORD)
    walt = users.create_user(uow, email="walt@vendor.test", name="Walt", password=PASSWORD)
    users.grant_operator(uow, vera.email)
    users.grant_operator(uow, walt.email)
    token = auth.issue_personal_token(uow, email=walt.email, password=PASSWORD)
    assert _identify(uow, token.secret).operator
    assert [o.email for o in operators.list_operators(uow)] == [vera.email, walt.email]

    with pytest.raises(Conflict):
        operators.revoke_operator(uow, vera.email, by_user_id=vera.id)
    assert users.get_user(uow, vera.id).is_operator

    taken = operators.revoke_operator(uow, "Walt@Vendor.test", by_user_id=vera.id)
    assert taken.email == walt.email
    assert not _identify(uow, token.secret).operator  # the same token, no longer an operator
    assert [o.email for o in operators.list_operators(uow)] == [vera.email]
    with pytest.raises(NotFound):
        operators.revoke_operator(uow, "nobody@vendor.test")
