"""Lots at their edges: the burn posted up to an expiry is paid by the expiring lot when it
comes first in the spending order; taking back all from a child whose burn spends what came
down returns what is left of it; what pending holds keep is not listed as expiring at the
lot's instant (it lapses when the hold ends, if the hold does not spend it); what a hold lets
go of a lapsed lot is not counted as spendable by a revocation or a batch of charges.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from creditpool.domain.amounts import credits
from creditpool.domain.errors import InsufficientCredits
from creditpool.domain.model import TransferKind
from creditpool.domain.policies import SettingsChange
from creditpool.services import (
    audit,
    families,
    holds,
    many_charges,
    members,
    periods,
    reports,
)
from creditpool.services import credits as credit_service
from creditpool.services.lot_views import ExpiringView
from creditpool.services.targets import Target
from creditpool.services.transactions import run_write
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.clock import FakeClock
from tests.support.factories import OPERATOR, add_members, make_org, make_user
from tests.support.lot_books import lot_breaches

NEW_YEAR = datetime(2026, 1, 1, tzinfo=UTC)
SEAT_A_DAY = SettingsChange(rate_licensed=credits("365"), rate_unlicensed=0, rate_external=0)
FIVE_DAYS = 5 * 24 * 3600


def day(number: float) -> datetime:
    return NEW_YEAR + timedelta(days=number)


def test_the_burn_up_to_an_expiry_is_paid_by_the_expiring_lot(
    uow: UnitOfWork, clock: FakeClock
) -> None:
    """One licensed seat (1 a day), one lot of 100 expiring on day 10, settled on day 11: the
    burn of the 10 days before (10) is the lot's, then its 90 left expire. (Choosing the burn's
    lots at the settling instant, past the expiry, found nothing to take: a 500.)"""
    org = make_org(uow, name="Small studio", settings=SEAT_A_DAY)
    bought = credit_service.record_purchase(
        uow, org.id, credits("100"), actor=OPERATOR, expires_at=day(10)
    )
    clock.current = day(11)
    periods.settle_due(uow, org.id)
    (burn,) = reports.list_transfers(uow, org.id, kind=TransferKind.METERING)
    assert [(s.lot_id, s.amount) for s in burn.lots] == [(bought.lots[0].lot_id, credits("10"))]
    (lapsed,) = reports.list_transfers(uow, org.id, kind=TransferKind.EXPIRY)
    assert lapsed.amount == credits("90")


def test_the_burn_up_to_an_expiry_is_not_taken_from_another_lot(
    uow: UnitOfWork, clock: FakeClock
) -> None:
    """The same, with a second lot that never expires (spent after the expiring one): the 10
    burnt before day 10 are the expiring lot's, not the other's, and 90 expire, not 100."""
    org = make_org(uow, name="Small studio", settings=SEAT_A_DAY)
    expiring = credit_service.record_purchase(
        uow, org.id, credits("100"), actor=OPERATOR, expires_at=day(10)
    )
    lasting = credit_service.record_purchase(uow, org.id, credits("100"), actor=OPERATOR)
    clock.current = day(11)
    periods.settle_due(uow, org.id)
    burns = reports.list_transfers(uow, org.id, kind=TransferKind.METERING)
    # Day 0 to 10 from the expiring lot, then day 10 to 11 from the other one.
    assert [(s.lot_id, s.amount) for s in burns[-1].lots] == [
        (expiring.lots[0].lot_id, credits("10"))
    ]
    (lapsed,) = reports.list_transfers(uow, org.id, kind=TransferKind.EXPIRY)
    assert lapsed.amount == credits("90")
    assert lasting.lots[0].lot_id not in {s.lot_id for s in lapsed.lots}


def test_taking_back_all_while_the_child_burns_what_came_down_first(
    uow: UnitOfWork, clock: FakeClock
) -> None:
    """North burns 1 a day, paid first by the 100 that came down (priority 50), then by
    its own 40 (priority 60). After 10 days, taking back all moves the 90 left of what came
    down; North keeps its own 40."""
    district = make_org(uow, name="Riverside district", purchase="500")
    owner = make_user(uow, "Head of North")
    north = families.create_child(
        uow, district.id, name="North", owner_user_id=owner.id, settings=SEAT_A_DAY, actor=OPERATOR
    )
    families.allot_to_child(uow, district.id, north.id, credits("100"), actor=OPERATOR)
    credit_service.record_purchase(uow, north.id, credits("40"), actor=OPERATOR, priority=60)
    clock.advance(days=10)
    moved = families.take_back_from_child(uow, district.id, north.id, actor=OPERATOR)
    assert moved.amount == credits("90")
    assert reports.get_balance(uow, north.id).available == credits("40")
    assert lot_breaches(uow, north.id) == []


def test_what_expires_at_an_instant_leaves_out_what_holds_keep(
    uow: UnitOfWork, clock: FakeClock
) -> None:
    """100 expiring on day 10, 50 allotted to Ada, who holds 20 of them over the
    instant. What lapses on day 10: the pool's 50 and Ada's unheld 30, 80 (Ada's: 30)."""
    org = make_org(uow, name="Small studio")
    credit_service.record_purchase(uow, org.id, credits("100"), actor=OPERATOR, expires_at=day(10))
    (ada,) = add_members(uow, org.id, 1)
    credit_service.allocate_credits(
        uow, org.id, Target.members([ada.id]), credits("50"), actor=OPERATOR
    )
    clock.current = day(5)
    holds.place_hold(
        uow, org.id, ada.id, credits("20"), expires_in=FIVE_DAYS + 3600, actor=OPERATOR
    )
    assert reports.get_balance(uow, org.id).expiring == (ExpiringView(day(10), credits("80")),)
    assert members.get_member(uow, org.id, ada.id).credits_expiring == (
        ExpiringView(day(10), credits("30")),
    )


def _trial_held_past_its_expiry(uow: UnitOfWork, clock: FakeClock) -> tuple[str, str]:
    """A returnable class: 10 paid credits that never lapse and a trial of 5 (spent first)
    lapsing after a day. Ada is allotted 3 (of the trial) and holds 2 of them for a second;
    two days later the trial has lapsed, but its held 2 are still in her wallet."""
    org = make_org(uow, name="Small studio")
    credit_service.record_purchase(uow, org.id, credits("10"), actor=OPERATOR)
    credit_service.record_purchase(
        uow, org.id, credits("5"), actor=OPERATOR, priority=10, expires_at=day(1)
    )
    (ada,) = add_members(uow, org.id, 1)
    credit_service.allocate_credits(
        uow, org.id, Target.members([ada.id]), credits("3"), actor=OPERATOR
    )
    holds.place_hold(uow, org.id, ada.id, credits("2"), expires_in=1, actor=OPERATOR)
    clock.current = day(2)
    return org.id, ada.id


def test_revoking_after_a_hold_of_a_lapsed_lot_ends_takes_nothing_that_lapsed(
    uow: UnitOfWork, clock: FakeClock
) -> None:
    org_id, ada = _trial_held_past_its_expiry(uow, clock)
    revoked = credit_service.revoke_credits(
        uow, org_id, Target.members([ada]), None, actor=OPERATOR
    )
    # The trial's unheld 1 lapsed with it, and the hold's 2 when it let go: nothing is left.
    assert revoked.total == 0
    balance = reports.get_balance(uow, org_id)
    assert (balance.available, balance.allocated, balance.expired) == (
        credits("10"),
        0,
        credits("5"),
    )
    assert lot_breaches(uow, org_id) == []
    assert audit.audit(uow, org_id).breaches == []


def test_charging_in_a_batch_after_a_hold_of_a_lapsed_lot_ends_finds_nothing_to_spend(
    uow: UnitOfWork, clock: FakeClock
) -> None:
    org_id, ada = _trial_held_past_its_expiry(uow, clock)
    charge = many_charges.Charge(ada, credits("1"), None, None, "api-key:farm")
    (outcome,) = run_write(
        uow, lambda: many_charges.charge_many(uow, org_id, [charge], with_members=False)
    )
    assert isinstance(outcome, InsufficientCredits)
    assert reports.get_balance(uow, org_id).expired == credits("5")
    assert lot_breaches(uow, org_id) == []
