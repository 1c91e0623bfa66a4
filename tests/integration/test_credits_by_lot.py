"""The class manager's table of an org of one lot takes the lot's figures from the org's
balance instead of summing every wallet's holdings: they must be what lot_views reads, the
seat burn accrued since it was last posted included. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace

from creditpool.domain.amounts import credits
from creditpool.domain.policies import SettingsChange
from creditpool.services import credits as credit_service
from creditpool.services import holds, orgs, usage
from creditpool.services.credits_by_lot import credits_by_lot
from creditpool.services.targets import Target
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.clock import FakeClock
from tests.support.factories import OPERATOR, add_members, make_org
from tests.support.lot_books import lots_of

SEAT_A_DAY = SettingsChange(rate_licensed=credits("365"), rate_unlicensed=0, rate_external=0)


def test_one_lot_has_the_figures_lot_views_reads(uow: UnitOfWork, clock: FakeClock) -> None:
    org = make_org(uow, purchase="100", settings=SEAT_A_DAY)  # the owner's seat burns 1 a day
    ada, ben = add_members(uow, org.id, 2)  # and theirs: 3 a day in all
    credit_service.allocate_credits(
        uow, org.id, Target.members([ada.id, ben.id]), credits("10"), actor=OPERATOR
    )
    clock.advance(days=2)
    usage.charge_usage(uow, org.id, ada.id, credits("4"), actor=OPERATOR)
    clock.advance(days=3, hours=5)  # burn accrued and not yet posted
    holds.place_hold(uow, org.id, ben.id, credits("3"), actor=OPERATOR)

    balance = orgs.get_org(uow, org.id).balance
    (shown,) = credits_by_lot(uow, org.id, balance, limit=50)
    (read,) = lots_of(uow, org.id)
    assert shown.metered > 0
    assert shown.used == credits("4")
    # Only the part holds keep is left unread for one lot.
    assert shown == replace(read, held=0)
    assert read.held == credits("3")
