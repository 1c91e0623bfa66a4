"""Automatic allocation, organisation settings, and the error tree.

Automatic allocation, exactly: a member with `available < amount` receives `k` bundles,
the least `k` with `available + k * bundle >= amount`, provided
`auto_allocated + k * bundle <= max_per_member`; otherwise 409 `insufficient_credits`.
"""

from __future__ import annotations

import re
from dataclasses import FrozenInstanceError

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from creditpool.domain import errors
from creditpool.domain.errors import (
    CreditpoolError,
    InsufficientCredits,
    InvalidInput,
    InvalidPolicy,
)
from creditpool.domain.metering import SeatRates
from creditpool.domain.policies import (
    DEFAULT_BUNDLE,
    AutoAllocation,
    OrgSettings,
    SettingsChange,
)

CREDIT = 1_000_000


def least_bundles(*, available: int, amount: int, bundle: int) -> int:
    """The least k with available + k * bundle >= amount, found by counting."""
    k = 0
    while available + k * bundle < amount:
        k += 1
    return k


# AutoAllocation.validated ----------------------------------------------------------------------


def test_the_default_bundle_is_five_credits() -> None:
    assert DEFAULT_BUNDLE == 5 * CREDIT
    assert AutoAllocation().bundle == 5 * CREDIT
    assert AutoAllocation().enabled is False


@settings(max_examples=100)
@given(
    bundle=st.integers(min_value=1, max_value=1_000 * CREDIT),
    multiple=st.integers(min_value=0, max_value=1_000),
    enabled=st.booleans(),
)
def test_a_cap_that_is_a_multiple_of_the_bundle_is_valid(
    bundle: int, multiple: int, enabled: bool
) -> None:
    policy = AutoAllocation(enabled=enabled, bundle=bundle, max_per_member=multiple * bundle)
    assert policy.validated() is policy


@pytest.mark.parametrize(
    ("bundle", "max_per_member"),
    [
        (0, 0),
        (0, 10 * CREDIT),
        (-5 * CREDIT, 0),
        (-5 * CREDIT, -10 * CREDIT),
        (5 * CREDIT, 12 * CREDIT),  # 12 is not a multiple of 5
        (5 * CREDIT, 1),
        (5 * CREDIT, 5 * CREDIT + 1),
        (5 * CREDIT, -5 * CREDIT),  # a multiple, but negative
        (3, 10),
    ],
)
def test_contradictory_bundle_and_cap_are_rejected(bundle: int, max_per_member: int) -> None:
    policy = AutoAllocation(enabled=True, bundle=bundle, max_per_member=max_per_member)
    with pytest.raises(InvalidPolicy) as caught:
        policy.validated()
    assert caught.value.code == "invalid_policy"
    assert isinstance(caught.value, InvalidInput)


@settings(max_examples=100)
@given(
    bundle=st.integers(min_value=2, max_value=100 * CREDIT),
    multiple=st.integers(min_value=0, max_value=1_000),
    data=st.data(),
)
def test_a_cap_off_the_bundle_grid_is_rejected(
    bundle: int, multiple: int, data: st.DataObject
) -> None:
    remainder = data.draw(st.integers(min_value=1, max_value=bundle - 1))
    policy = AutoAllocation(bundle=bundle, max_per_member=multiple * bundle + remainder)
    with pytest.raises(InvalidPolicy):
        policy.validated()


def test_the_message_names_bundle_and_cap_in_credits() -> None:
    with pytest.raises(InvalidPolicy) as caught:
        AutoAllocation(bundle=5 * CREDIT, max_per_member=12 * CREDIT).validated()
    assert "5" in caught.value.detail
    assert "12" in caught.value.detail


# AutoAllocation.top_up: worked examples --------------------------------------------------------


def test_nothing_is_allotted_when_the_member_has_enough() -> None:
    disabled = AutoAllocation(enabled=False)
    assert disabled.top_up(available=3 * CREDIT, amount=3 * CREDIT, auto_allocated=0) == 0
    assert disabled.top_up(available=3 * CREDIT, amount=1, auto_allocated=0) == 0
    capped = AutoAllocation(enabled=True, bundle=5 * CREDIT, max_per_member=0)
    assert capped.top_up(available=10 * CREDIT, amount=2 * CREDIT, auto_allocated=0) == 0


def test_a_disabled_policy_refuses_a_short_member() -> None:
    with pytest.raises(InsufficientCredits) as caught:
        AutoAllocation(enabled=False, max_per_member=100 * CREDIT).top_up(
            available=CREDIT, amount=2 * CREDIT, auto_allocated=0
        )
    assert caught.value.code == "insufficient_credits"


def test_one_bundle_covers_a_small_shortfall() -> None:
    # 1 available, 3 needed, bundles of 5, cap 20: one bundle (1 + 5 >= 3).
    policy = AutoAllocation(enabled=True, bundle=5 * CREDIT, max_per_member=20 * CREDIT)
    assert policy.top_up(available=CREDIT, amount=3 * CREDIT, auto_allocated=0) == 5 * CREDIT


def test_several_bundles_cover_a_large_shortfall() -> None:
    # 0 available, 12 needed, bundles of 5: k = 3 (15 >= 12, 10 < 12).
    policy = AutoAllocation(enabled=True, bundle=5 * CREDIT, max_per_member=20 * CREDIT)
    assert policy.top_up(available=0, amount=12 * CREDIT, auto_allocated=0) == 15 * CREDIT
    # 2 available, 12 needed: k = 2 (2 + 10 >= 12 exactly).
    assert policy.top_up(available=2 * CREDIT, amount=12 * CREDIT, auto_allocated=0) == (
        10 * CREDIT
    )


def test_the_cap_may_be_reached_exactly_but_not_passed() -> None:
    policy = AutoAllocation(enabled=True, bundle=5 * CREDIT, max_per_member=20 * CREDIT)
    # 15 already allotted automatically; one more bundle makes 20: allowed.
    assert policy.top_up(available=0, amount=CREDIT, auto_allocated=15 * CREDIT) == 5 * CREDIT
    # 20 already: the next bundle would make 25.
    with pytest.raises(InsufficientCredits):
        policy.top_up(available=0, amount=CREDIT, auto_allocated=20 * CREDIT)
    # 10 already, 11 needed: three bundles would make 25.
    with pytest.raises(InsufficientCredits):
        policy.top_up(available=0, amount=11 * CREDIT, auto_allocated=10 * CREDIT)


def test_a_zero_cap_allows_no_automatic_allocation() -> None:
    policy = AutoAllocation(enabled=True, bundle=5 * CREDIT, max_per_member=0)
    with pytest.raises(InsufficientCredits):
        policy.top_up(available=0, amount=1, auto_allocated=0)


# AutoAllocation.top_up: against a brute-force count --------------------------------------------


@settings(max_examples=300)
@given(
    bundle=st.integers(min_value=1, max_value=10 * CREDIT),
    cap_bundles=st.integers(min_value=0, max_value=200),
    auto_bundles=st.integers(min_value=0, max_value=200),
    available=st.integers(min_value=0, max_value=100 * CREDIT),
    data=st.data(),
    enabled=st.booleans(),
)
def test_top_up_is_the_least_number_of_bundles_within_the_cap(
    bundle: int,
    cap_bundles: int,
    auto_bundles: int,
    available: int,
    data: st.DataObject,
    enabled: bool,
) -> None:
    # The amount is at most 300 bundles past what is available, so the count stays short.
    amount = data.draw(st.integers(min_value=1, max_value=available + 300 * bundle))
    max_per_member = cap_bundles * bundle
    # Manual allotment does not count toward the cap, so auto_allocated need not be a multiple.
    auto_allocated = auto_bundles * bundle + data.draw(st.integers(0, bundle - 1))
    policy = AutoAllocation(enabled=enabled, bundle=bundle, max_per_member=max_per_member)

    k = least_bundles(available=available, amount=amount, bundle=bundle)
    if k == 0:
        assert policy.top_up(available=available, amount=amount, auto_allocated=auto_allocated) == 0
    elif not enabled or auto_allocated + k * bundle > max_per_member:
        with pytest.raises(InsufficientCredits):
            policy.top_up(available=available, amount=amount, auto_allocated=auto_allocated)
    else:
        top_up = policy.top_up(available=available, amount=amount, auto_allocated=auto_allocated)
        assert top_up == k * bundle
        assert available + top_up >= amount
        assert available + top_up - bundle < amount
        assert auto_allocated + top_up <= max_per_member


# OrgSettings and SettingsChange ----------------------------------------------------------------


SETTINGS = OrgSettings(
    returnable=True,
    auto_allocation=AutoAllocation(enabled=True, bundle=5 * CREDIT, max_per_member=20 * CREDIT),
    seat_rates=SeatRates(licensed=CREDIT, unlicensed=100_000, external=0),
)


def test_the_default_settings_are_valid() -> None:
    defaults = OrgSettings()
    assert defaults.validated() is defaults
    assert defaults.returnable is True
    assert defaults.auto_allocation == AutoAllocation()


def test_an_empty_change_keeps_every_field() -> None:
    assert SettingsChange().applied_to(SETTINGS) == SETTINGS


def test_a_change_keeps_the_fields_it_does_not_name() -> None:
    changed = SettingsChange(auto_max_per_member=40 * CREDIT).applied_to(SETTINGS)
    assert changed.auto_allocation == AutoAllocation(
        enabled=True, bundle=5 * CREDIT, max_per_member=40 * CREDIT
    )
    assert changed.returnable is True
    assert changed.seat_rates == SETTINGS.seat_rates
    # The original is untouched.
    assert SETTINGS.auto_allocation.max_per_member == 20 * CREDIT


def test_a_change_to_false_or_zero_is_applied_not_kept() -> None:
    # False and 0 are values, not "no change".
    changed = SettingsChange(
        returnable=False, auto_enabled=False, auto_max_per_member=0, rate_licensed=0
    ).applied_to(SETTINGS)
    assert changed == OrgSettings(
        returnable=False,
        auto_allocation=AutoAllocation(enabled=False, bundle=5 * CREDIT, max_per_member=0),
        seat_rates=SeatRates(licensed=0, unlicensed=100_000, external=0),
    )


def test_every_field_can_be_changed_at_once() -> None:
    change = SettingsChange(
        returnable=False,
        auto_enabled=False,
        auto_bundle=2 * CREDIT,
        auto_max_per_member=6 * CREDIT,
        rate_licensed=2 * CREDIT,
        rate_unlicensed=200_000,
        rate_external=1,
    )
    assert change.applied_to(SETTINGS) == OrgSettings(
        returnable=False,
        auto_allocation=AutoAllocation(enabled=False, bundle=2 * CREDIT, max_per_member=6 * CREDIT),
        seat_rates=SeatRates(licensed=2 * CREDIT, unlicensed=200_000, external=1),
    )


@pytest.mark.parametrize(
    "change",
    [
        SettingsChange(auto_max_per_member=12 * CREDIT),  # not a multiple of the 5 kept
        SettingsChange(auto_bundle=3 * CREDIT),  # the 20 kept is not a multiple of 3
        SettingsChange(auto_bundle=0),
        SettingsChange(auto_bundle=-5 * CREDIT),
        SettingsChange(auto_max_per_member=-5 * CREDIT),
        SettingsChange(rate_licensed=-1),
        SettingsChange(rate_unlicensed=-1),
        SettingsChange(rate_external=-1),
    ],
)
def test_a_change_that_leaves_a_contradiction_is_rejected(change: SettingsChange) -> None:
    with pytest.raises(InvalidPolicy) as caught:
        change.applied_to(SETTINGS)
    assert caught.value.code == "invalid_policy"


def test_a_bundle_and_cap_changed_together_are_checked_together() -> None:
    # Bundle 3 with the old cap of 20 contradicts; bundle 3 with a cap of 21 does not.
    changed = SettingsChange(auto_bundle=3 * CREDIT, auto_max_per_member=21 * CREDIT).applied_to(
        SETTINGS
    )
    assert changed.auto_allocation.bundle == 3 * CREDIT
    assert changed.auto_allocation.max_per_member == 21 * CREDIT


def test_settings_are_immutable() -> None:
    with pytest.raises(FrozenInstanceError):
        SETTINGS.returnable = False  # type: ignore[misc]


# The error tree --------------------------------------------------------------------------------


def all_error_classes() -> list[type[CreditpoolError]]:
    """Every CreditpoolError subclass reachable from the base, the base included."""
    found: list[type[CreditpoolError]] = []
    pending: list[type[CreditpoolError]] = [CreditpoolError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def test_every_error_class_of_the_module_is_in_the_tree() -> None:
    in_module = {
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, Exception)
    }
    assert in_module <= set(all_error_classes())
    assert len(in_module) >= 17


def test_every_error_code_is_a_distinct_snake_case_word() -> None:
    codes = [cls.code for cls in all_error_classes()]
    assert len(codes) == len(set(codes)), codes
    for code in codes:
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", code), code


def test_every_error_subclass_declares_its_own_code() -> None:
    for cls in all_error_classes():
        assert "code" in vars(cls), cls.__name__


API_CODES = [
    "unauthenticated",
    "forbidden",
    "not_found",
    "validation_error",
    "invalid_amount",
    "invalid_policy",
    "insufficient_credits",
    "not_returnable",
    "org_paused",
    "invite_invalid",
    "already_member",
    "already_exists",
    "owner_required",
    "member_removed",
    "idempotency_mismatch",
]


@pytest.mark.parametrize("code", API_CODES)
def test_every_code_the_api_publishes_has_an_error_class(code: str) -> None:
    assert code in {cls.code for cls in all_error_classes()}


@pytest.mark.parametrize(
    ("child", "parent"),
    [
        (errors.InvalidAmount, errors.InvalidInput),
        (errors.InvalidPolicy, errors.InvalidInput),
        (errors.IdempotencyMismatch, errors.InvalidInput),
        (errors.InviteInvalid, errors.NotFound),
        (errors.InsufficientCredits, errors.Conflict),
        (errors.NotReturnable, errors.Conflict),
        (errors.OrgPaused, errors.Conflict),
        (errors.AlreadyMember, errors.Conflict),
        (errors.AlreadyExists, errors.Conflict),
        (errors.OwnerRequired, errors.Conflict),
        (errors.MemberRemoved, errors.Conflict),
        (errors.PreviewOutdated, errors.Conflict),
        (errors.Unauthenticated, errors.CreditpoolError),
        (errors.Forbidden, errors.CreditpoolError),
    ],
)
def test_the_tree_has_the_documented_shape(
    child: type[CreditpoolError], parent: type[CreditpoolError]
) -> None:
    assert issubclass(child, parent)


def test_an_error_carries_its_detail_and_code() -> None:
    error = errors.NotReturnable("this org keeps credits with its members")
    assert error.detail == "this org keeps credits with its members"
    assert str(error) == error.detail
    assert error.code == "not_returnable"
    assert isinstance(error, CreditpoolError)
