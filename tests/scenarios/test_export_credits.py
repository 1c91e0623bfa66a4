"""Automatic allocation: a studio whose artists spend export credits topped up on demand.

The studio's owner lets the pool top each artist up in bundles of 5 credits, up to 20 credits
per artist in all (a cap that must be a multiple of the bundle: 12 is refused). the API's rule,
exactly: when usage (or a hold) of `amount` meets an artist with `w < amount` available, the
artist receives `k` bundles, the least `k` with `w + 5k >= amount`, provided
`auto_allocated + 5k <= 20` and the pool holds `5k`; otherwise nothing moves. Past the cap only a
manual allotment helps, and manual allotments never count toward the cap.

A second studio forbids returning credits to the pool: revocation is refused there, and an
artist who leaves keeps its credits on the removed membership.

Seat rates are 0: nothing burns. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import pytest

from creditpool.domain.amounts import credits
from creditpool.domain.errors import InsufficientCredits, InvalidPolicy, NotReturnable
from creditpool.domain.model import HoldStatus, MemberStatus, TransferKind
from creditpool.domain.policies import SettingsChange
from creditpool.services import audit, holds, members, orgs, reports, resets, usage
from creditpool.services import credits as credit_service
from creditpool.services.targets import Target
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.factories import OPERATOR, add_members, make_org

EXPORTER = "api-key:exporter"
BUNDLE = credits("5")
CAP = credits("20")
AUTOMATIC = SettingsChange(auto_enabled=True, auto_bundle=BUNDLE, auto_max_per_member=CAP)


def export(uow: UnitOfWork, org_id: str, member_id: str, cost: str) -> usage.UsageResult:
    return usage.charge_usage(
        uow, org_id, member_id, credits(cost), metrics={"exports": 1}, actor=EXPORTER
    )


def test_the_cap_must_be_a_multiple_of_the_bundle(uow: UnitOfWork) -> None:
    org = make_org(uow, settings=AUTOMATIC)

    # 12 is not a multiple of 5: refused, and the cap stays 20.
    with pytest.raises(InvalidPolicy):
        orgs.update_settings(
            uow, org.id, SettingsChange(auto_max_per_member=credits("12")), actor=OPERATOR
        )
    assert orgs.get_org(uow, org.id).settings.auto_allocation.max_per_member == CAP
    # Nor may a studio open with it.
    with pytest.raises(InvalidPolicy):
        make_org(uow, settings=SettingsChange(auto_bundle=BUNDLE, auto_max_per_member=credits(12)))
    # 15 = 3 x 5 is fine.
    changed = orgs.update_settings(
        uow, org.id, SettingsChange(auto_max_per_member=credits("15")), actor=OPERATOR
    )
    assert changed.auto_allocation.max_per_member == credits("15")


def test_usage_tops_up_in_bundles_up_to_the_cap(uow: UnitOfWork) -> None:
    org = make_org(uow, name="Studio", purchase="100", settings=AUTOMATIC)
    (artist,) = add_members(uow, org.id, 1)

    # w = 0, amount 7: least k with 0 + 5k >= 7 is k = 2, so 10 arrive and 10 - 7 = 3 remain.
    first = export(uow, org.id, artist.id, "7")
    assert first.auto_allocated == 2 * BUNDLE
    assert first.member.auto_allocated == credits("10")
    assert first.member.credits_available == credits("3")

    # w = 3, amount 3: the wallet pays, no bundle (w >= amount), 0 remain.
    second = export(uow, org.id, artist.id, "3")
    assert second.auto_allocated == 0
    assert second.member.credits_available == 0

    # w = 0, amount 12: k = 3 (15 >= 12), but 10 + 15 = 25 > 20: refused, nothing moves.
    with pytest.raises(InsufficientCredits):
        export(uow, org.id, artist.id, "12")
    unchanged = members.get_member(uow, org.id, artist.id)
    assert (unchanged.auto_allocated, unchanged.credits_available) == (credits("10"), 0)
    assert reports.get_balance(uow, org.id).available == credits("90")

    # w = 0, amount 9.5: k = 2 (10 >= 9.5) and 10 + 10 = 20 <= 20: exactly to the cap.
    third = export(uow, org.id, artist.id, "9.5")
    assert third.auto_allocated == 2 * BUNDLE
    assert third.member.auto_allocated == CAP
    assert third.member.credits_available == credits("0.5")

    # w = 0.5, amount 0.6: k = 1 would make 25 > 20: past the cap even for a tenth of a credit.
    with pytest.raises(InsufficientCredits):
        export(uow, org.id, artist.id, "0.6")
    # But what is in the wallet still pays without a bundle: 0.5 <= 0.5.
    assert export(uow, org.id, artist.id, "0.5").auto_allocated == 0

    # Past the cap only a manual allotment helps, and it does not count toward the cap.
    credit_service.allocate_credits(
        uow, org.id, Target.members([artist.id]), credits("2"), actor=OPERATOR
    )
    after_manual = export(uow, org.id, artist.id, "1.5")
    assert after_manual.auto_allocated == 0
    assert after_manual.member.auto_allocated == CAP
    assert after_manual.member.credits_allocated == CAP + credits("2")
    assert after_manual.member.credits_available == credits("0.5")

    # Used: 7 + 3 + 9.5 + 0.5 + 1.5 = 21.5; pool: 100 - 20 automatic - 2 manual = 78.
    assert after_manual.member.credits_used == credits("21.5")
    assert after_manual.member.usage == {"exports": 5}
    balance = reports.get_balance(uow, org.id)
    assert (balance.available, balance.used) == (credits("78"), credits("21.5"))
    bundles = reports.list_transfers(uow, org.id, kind=TransferKind.AUTO_ALLOCATION)
    assert sorted(t.amount for t in bundles) == [credits("10"), credits("10")]
    report = audit.audit(uow, org.id)
    assert report.clean, report.breaches


def test_manual_credits_are_spent_before_any_bundle(uow: UnitOfWork) -> None:
    org = make_org(uow, purchase="100", settings=AUTOMATIC)
    (artist,) = add_members(uow, org.id, 1)
    credit_service.allocate_credits(
        uow, org.id, Target.members([artist.id]), credits("4"), actor=OPERATOR
    )

    # w = 4, amount 6: least k with 4 + 5k >= 6 is k = 1; 4 + 5 - 6 = 3 remain.
    result = export(uow, org.id, artist.id, "6")

    assert result.auto_allocated == BUNDLE
    assert result.member.auto_allocated == BUNDLE  # the manual 4 do not count toward the cap
    assert result.member.credits_available == credits("3")


def test_a_hold_tops_up_like_usage(uow: UnitOfWork) -> None:
    org = make_org(uow, purchase="100", settings=AUTOMATIC)
    (artist,) = add_members(uow, org.id, 1)

    # w = 0, a hold of 11: k = 3 (15 >= 11); 15 in the wallet, 11 of them held, 4 available.
    hold = holds.place_hold(uow, org.id, artist.id, credits("11"), actor=EXPORTER)

    assert hold.status is HoldStatus.PENDING
    held = members.get_member(uow, org.id, artist.id)
    assert held.auto_allocated == 3 * BUNDLE
    assert (held.credits_balance, held.credits_held) == (credits("15"), credits("11"))
    assert held.credits_available == credits("4")


def test_a_pool_short_of_the_bundles_refuses_even_under_the_cap(uow: UnitOfWork) -> None:
    # The pool has 7; amount 6 needs k = 2 bundles = 10 > 7, though 10 <= the cap of 20.
    org = make_org(uow, purchase="7", settings=AUTOMATIC)
    (artist,) = add_members(uow, org.id, 1)

    with pytest.raises(InsufficientCredits):
        export(uow, org.id, artist.id, "6")

    assert reports.get_balance(uow, org.id).available == credits("7")
    assert members.get_member(uow, org.id, artist.id).auto_allocated == 0
    # 5 needs one bundle, which the pool has: 7 - 5 = 2 left.
    assert export(uow, org.id, artist.id, "5").auto_allocated == BUNDLE
    assert reports.get_balance(uow, org.id).available == credits("2")


def test_lowering_the_cap_only_stops_further_bundles(uow: UnitOfWork) -> None:
    org = make_org(uow, purchase="100", settings=AUTOMATIC)
    (artist,) = add_members(uow, org.id, 1)
    export(uow, org.id, artist.id, "10")  # two bundles: auto_allocated 10
    orgs.update_settings(uow, org.id, SettingsChange(auto_max_per_member=BUNDLE), actor=OPERATOR)

    # 10 > the new cap of 5: nothing is taken back, but 10 + 5 > 5 refuses the next bundle.
    assert members.get_member(uow, org.id, artist.id).auto_allocated == credits("10")
    with pytest.raises(InsufficientCredits):
        export(uow, org.id, artist.id, "1")


def test_a_studio_that_forbids_returns_keeps_credits_on_the_artist(uow: UnitOfWork) -> None:
    org = make_org(
        uow,
        purchase="100",
        settings=SettingsChange(
            returnable=False, auto_enabled=True, auto_bundle=BUNDLE, auto_max_per_member=CAP
        ),
    )
    leaving, staying = add_members(uow, org.id, 2)
    credit_service.allocate_credits(
        uow, org.id, Target.members([leaving.id, staying.id]), credits("3"), actor=OPERATOR
    )
    # The leaving artist exports 4: w = 3, k = 1 bundle, 3 + 5 - 4 = 4 left in its wallet.
    assert export(uow, org.id, leaving.id, "4").member.credits_available == credits("4")
    # Pool: 100 - 2 x 3 - 5 = 89.
    assert reports.get_balance(uow, org.id).available == credits("89")

    # Revocation is refused, some or all, and nothing moves.
    with pytest.raises(NotReturnable):
        credit_service.revoke_credits(
            uow, org.id, Target.members([leaving.id]), credits("1"), actor=OPERATOR
        )
    with pytest.raises(NotReturnable):
        credit_service.revoke_credits(uow, org.id, Target.all_students(), actor=OPERATOR)
    assert members.get_member(uow, org.id, leaving.id).credits_available == credits("4")

    # The artist leaves: removed, its 4 credits stay on it, the pool stays at 89.
    removed = members.remove_member(uow, org.id, leaving.id, actor=OPERATOR)
    assert removed.status is MemberStatus.REMOVED
    assert removed.credits_balance == credits("4")
    assert reports.get_balance(uow, org.id).available == credits("89")
    assert reports.list_transfers(uow, org.id, kind=TransferKind.REVOCATION) == []
    # A reset of the rest does the same: 3 stay on the other artist, nothing is revoked.
    reset = resets.reset_org(uow, org.id, actor=OPERATOR)
    assert (reset.removed, reset.revoked) == (1, 0)
    assert members.get_member(uow, org.id, staying.id).credits_balance == credits("3")
    balance = reports.get_balance(uow, org.id)
    # In wallets: 4 + 3 = 7; 89 + 7 + 4 used = 100 purchased.
    assert (balance.available, balance.allocated) == (credits("89"), credits("7"))
    report = audit.audit(uow, org.id)
    assert report.clean, report.breaches
