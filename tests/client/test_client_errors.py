"""Each refusal the server gives comes out of the client as the exception of its `code`, with
the status, code, title and detail of the problem, on each engine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from creditpool.client import (
    AlreadyExists,
    AlreadyMember,
    AutoAllocationChange,
    CheckoutUnavailable,
    Client,
    Conflict,
    CreditpoolError,
    Forbidden,
    IdempotencyMismatch,
    InsufficientCredits,
    InvalidAmount,
    InvalidPolicy,
    InviteInvalid,
    MemberRemoved,
    NotFound,
    NotReturnable,
    OrgPaused,
    OwnerRequired,
    PayloadTooLarge,
    RequestDecided,
    SettingsChange,
    Unauthenticated,
    UsageEvent,
    ValidationError,
)
from tests.client.conftest import OPERATOR_KEY, PASSWORD, People, Served, a_class


def test_who_may_call_what(served: Served, people: People) -> None:
    school = a_class(served.url, people, students=1)
    with (
        Client(served.url, token="cpt.not.a.token") as stranger,
        pytest.raises(Unauthenticated) as refused,
    ):
        stranger.me()
    assert (refused.value.status, refused.value.code) == (401, "unauthenticated")
    assert refused.value.title
    assert refused.value.detail
    with Client(served.url) as anonymous, pytest.raises(Unauthenticated):
        anonymous.create_token(email=people.owner.email, password="not the password")

    with Client(served.url, token=school.students[0].token) as student:
        with pytest.raises(Forbidden) as forbidden:
            student.update_settings(org=school.org, change=SettingsChange(returnable=False))
        assert (forbidden.value.status, forbidden.value.code) == (403, "forbidden")
    with Client(served.url, token=school.owner.token) as governing:
        with pytest.raises(NotFound) as missing:
            governing.get_member(org=school.org, member="mem_nobody")
        assert missing.value.status == 404
        memberships = governing.me().memberships
        owner = next(m.member_id for m in memberships if m.org_id == school.org)
        with pytest.raises(OwnerRequired) as owner_required:
            governing.update_member(org=school.org, member=owner, role="manager")
        assert isinstance(owner_required.value, Conflict)
        assert governing.get_member(org=school.org, member=owner).role == "owner"


def test_malformed_requests(served: Served, people: People) -> None:
    school = a_class(served.url, people, students=1)
    [ada] = school.student_ids
    with Client(served.url) as anonymous:
        with pytest.raises(AlreadyExists):
            anonymous.sign_up(email=people.owner.email.upper(), password=PASSWORD, name="Again")
        with pytest.raises(ValidationError) as short:
            anonymous.sign_up(email="short@client.test", password="short", name="Short")
        assert (short.value.status, short.value.code) == (422, "validation_error")
    with Client(served.url, token=school.owner.token) as governing:
        with pytest.raises(ValidationError):
            governing.balance(org=school.org, at=datetime.now(UTC) - timedelta(days=1))
        with pytest.raises(InvalidAmount) as seven_places:
            governing.allocate(org=school.org, member_ids=[ada], amount=Decimal("0.0000001"))
        assert isinstance(seven_places.value, ValidationError)  # a kind of malformed request
        with pytest.raises(InvalidPolicy):
            governing.update_settings(
                org=school.org,
                change=SettingsChange(auto_allocation=AutoAllocationChange(bundle=0)),
            )
        governing.allocate(org=school.org, member_ids=[ada], amount=1, idempotency_key="k-1")
        with pytest.raises(IdempotencyMismatch):
            governing.allocate(org=school.org, member_ids=[ada], amount=2, idempotency_key="k-1")
        assert governing.get_member(org=school.org, member=ada).credits_available == Decimal(1)
    events = [  # over the 4 MiB a batch may send
        UsageEvent(key=f"big-{n}", member_id=ada, amount=1, reference="x" * 200)
        for n in range(20_000)
    ]
    with Client(served.url, token=school.key) as product, pytest.raises(PayloadTooLarge) as big:
        product.charge_usage_batch(org=school.org, events=events)
    assert big.value.status == 413


def test_refusals_of_the_state(served: Served, people: People) -> None:
    school = a_class(served.url, people, students=2, credits=Decimal(10))
    ada, ben = school.student_ids
    with Client(served.url, token=school.owner.token) as governing:
        with pytest.raises(InsufficientCredits) as short:
            governing.allocate(org=school.org, member_ids="all", amount=6)
        assert (short.value.status, short.value.code) == (409, "insufficient_credits")
        assert governing.balance(org=school.org).available == Decimal(10)  # nothing moved

        governing.allocate(org=school.org, member_ids=[ada], amount=2)
        governing.update_settings(org=school.org, change=SettingsChange(returnable=False))
        with pytest.raises(NotReturnable):
            governing.revoke(org=school.org, member_ids=[ada])
        governing.remove_member(org=school.org, member=ben)
        governing.pause(org=school.org)
        code = governing.invite_link(org=school.org).code
    with Client(served.url, token=school.key) as product:
        with pytest.raises(OrgPaused):
            product.charge_usage(org=school.org, member=ada, amount=1)
        with Client(served.url, token=school.owner.token) as governing:
            governing.resume(org=school.org)
        with pytest.raises(MemberRemoved):
            product.charge_usage(org=school.org, member=ben, amount=1)

    with Client(served.url, token=school.students[0].token) as student:
        with pytest.raises(InviteInvalid) as invalid:
            student.join(code="not-a-code")
        assert isinstance(invalid.value, NotFound)
        with pytest.raises(AlreadyMember):
            student.join(code=code)


def test_buying_credits_refusals(served: Served, people: People) -> None:
    school = a_class(served.url, people, students=0)
    with Client(served.url, token=school.owner.token) as governing:
        with pytest.raises(CheckoutUnavailable) as unavailable:
            governing.checkout(org=school.org, amount=10)  # the server has no Stripe keys
        assert unavailable.value.status == 409
        asked = governing.request_purchase(org=school.org, amount=5)
    with Client(served.url, token=OPERATOR_KEY) as operator:
        operator.decline_purchase_request(org=school.org, request=asked.id, reason="budget")
        with pytest.raises(RequestDecided) as decided:
            operator.approve_purchase_request(org=school.org, request=asked.id)
        assert isinstance(decided.value, Conflict)
        assert isinstance(decided.value, CreditpoolError)
