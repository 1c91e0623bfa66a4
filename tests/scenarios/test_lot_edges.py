"""Lots at their edges: the burn posted up to an expiry is paid by the expiring lot when it
comes first in the spending order; taking back all from a child whose burn spends what came
down returns what is left of it; what pending holds keep is not listed as expiring at the
lot's instant (it lapses when the hold ends, if the hold does not spend it).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from creditpool.domain.amounts import credits
from creditpool.domain.errors import InsufficientCredits
from creditpool.domain.model import AccountKind, Seat, TransferKind
from creditpool.domain.policies import SettingsChange
from creditpool.services import (
    audit,
    families,
    holds,
    many_charges,
    members,
    periods,
    reports,
    usage,
)
from creditpool.services import credits as credit_service
from creditpool.services.ledger import balances
from creditpool.services.lot_views import ExpiringView
from creditpool.services.targets import Target
from creditpool.services.transactions import run_write
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.clock import FakeClock
from tests.support.factories import OPERATOR, add_members, make_org, make_user
from tests.support.lot_books import lot_breaches, lots_of
from tests.support.worked_tables import docstring_table

# The story as the brief asked for it: the seat burn is paid by the year lot.
_STORY = """Lots: a year's purchase expires in the pool and in three wallets while two holds
are open.

On 1 January 2026 the Lighthouse studio buys a year: 1,200 credits expiring on 1 January 2027
at 00:00 UTC (day 365). The owner and Ada hold licensed seats at 365 credits a year, 1 credit
a day each; Ben and Cleo's unlicensed seats cost nothing. So the pool burns 2 credits a day.

1. Day 0: the owner allots 100 each to Ada, Ben and Cleo (pool 900).
2. Day 200: the vendor grants 20 credits that never expire, spent first (priority 10); the
   purchase posts the burn first (2 x 200 = 400, from the year), and the owner allots the 20
   to Cleo. Cleo's wallet: 100 of the year, 20 of the grant.
3. Day 250: Ada renders for 70 (from the year: 30 left); Cleo renders for 5 (from the grant,
   spent first: 15 left).
4. Day 364, 12:00: Ada places a hold of 20 and Ben one of 40, both on the year's credits.
5. Day 365, 00:00, the instant of expiry, before anything posts it: Ada and Ben each try to
   render for 1. Their spendable credits are all of the year: both are refused for lack of
   credits.
6. Day 366, 00:00: the first request since reaches the org and posts the expiry. First the
   burn up to the instant only, 2 x 165 = 330 (not 332: after the instant the pool holds
   nothing that burns), then one `expiry` transfer per account to `expired`:

       account  expired  left in it after
       pool     170      0
       Ada      10       20, held
       Ben      60       40, held
       Cleo     100      15 of the grant

   Ada can spend nothing (her seat's access is off, the pool being empty too); Cleo renders
   for 5 from the grant.
7. Day 366, 01:00: Ben's hold is captured for 25: they are paid by the expired year's held
   credits, and the 15 it lets go lapse at once (an `expiry` of 15). Ada's hold is voided:
   its 20 lapse at once too (an `expiry` of 20).

The org's balance after each step (pool available, in wallets, used, burnt, expired, in
credits), and the year lot's figures (list_lots):

    step  available  allocated  used  metered  expired  year_in_wallets  year_held  year_used
    4     171        245        75    729      0        230              60         70
    6     0          75         75    730      340      60               60         70
    6b    0          70         80    730      340      60               60         70
    7     0          10         105   730      375      0                0          95

(Step 4 is read at day 364, 12:00: 164.5 days of burn, 329. 6b is after Cleo's render.) At
every step 1,220 bought = available + allocated + used + metered + expired. Every expected
figure is read from these tables or worked out above, never from the code. Runs on SQLite and
PostgreSQL.
"""

NEW_YEAR = datetime(2026, 1, 1, tzinfo=UTC)
YEAR_ENDS = datetime(2027, 1, 1, tzinfo=UTC)
RENDER_FARM = "api-key:render-farm"
SEAT_A_DAY = SettingsChange(rate_licensed=credits("365"), rate_unlicensed=0, rate_external=0)
FIVE_DAYS = 5 * 24 * 3600
FIGURES = docstring_table(_STORY, "step  available")
EXPIRED = docstring_table(_STORY, "account  expired")


def day(number: float) -> datetime:
    return NEW_YEAR + timedelta(days=number)


def figures(uow: UnitOfWork, org_id: str, year_lot: str) -> list[str]:
    """The org's figures as a row of the docstring's table (without its step)."""
    balance = reports.get_balance(uow, org_id)
    with uow:
        expired = balances(uow.session, org_id, [AccountKind.EXPIRED])[AccountKind.EXPIRED]
    (year,) = [lot for lot in lots_of(uow, org_id) if lot.id == year_lot]
    shown = (
        balance.available,
        balance.allocated,
        balance.used,
        balance.metered,
        expired,
        year.in_wallets,
        year.held,
        year.used,
    )
    assert balance.purchased == credits("1220") == sum(shown[:5])
    return [
        str(figure // 1_000_000) if figure % 1_000_000 == 0 else str(figure) for figure in shown
    ]


def row(step: str) -> list[str]:
    (found,) = [cells[1:] for cells in FIGURES if cells[0] == step]
    return found


def test_a_year_expires_in_the_pool_and_the_wallets_while_holds_are_open(
    uow: UnitOfWork, clock: FakeClock
) -> None:
    assert clock.current == NEW_YEAR
    org = make_org(uow, name="Lighthouse studio", settings=SEAT_A_DAY)
    year = credit_service.record_purchase(
        uow, org.id, credits("1200"), actor=OPERATOR, priority=50, expires_at=YEAR_ENDS
    )
    year_lot = year.lots[0].lot_id
    (ada,) = add_members(uow, org.id, 1)
    ben, cleo = add_members(uow, org.id, 2, seat=Seat.UNLICENSED)
    assert reports.get_balance(uow, org.id).burn_rate_per_day == credits("2")

    # 1. Day 0: 100 each.
    credit_service.allocate_credits(
        uow, org.id, Target.all_students(), credits("100"), actor=OPERATOR
    )

    # 2. Day 200: a grant that never expires, spent first, all of it to Cleo.
    clock.current = day(200)
    grant = credit_service.record_purchase(uow, org.id, credits("20"), actor=OPERATOR, priority=10)
    grant_lot = grant.lots[0].lot_id
    to_cleo = credit_service.allocate_credits(
        uow, org.id, Target.members([cleo.id]), credits("20"), actor=OPERATOR
    )
    (allotted,) = reports.list_transfers(
        uow, org.id, member_id=cleo.id, kind=TransferKind.ALLOCATION, limit=1
    )
    assert to_cleo.total == credits("20")
    assert [(s.lot_id, s.amount) for s in allotted.lots] == [(grant_lot, credits("20"))]

    # 3. Day 250: renders.
    clock.current = day(250)
    ada_render = usage.charge_usage(uow, org.id, ada.id, credits("70"), actor=RENDER_FARM)
    cleo_render = usage.charge_usage(uow, org.id, cleo.id, credits("5"), actor=RENDER_FARM)
    assert [(s.lot_id, s.amount) for s in ada_render.transfer.lots] == [(year_lot, credits("70"))]
    assert [(s.lot_id, s.amount) for s in cleo_render.transfer.lots] == [(grant_lot, credits("5"))]

    # 4. Day 364, 12:00: two holds on the year's credits.
    clock.current = day(364.5)
    ada_hold = holds.place_hold(
        uow, org.id, ada.id, credits("20"), expires_in=FIVE_DAYS, actor=RENDER_FARM
    )
    ben_hold = holds.place_hold(
        uow, org.id, ben.id, credits("40"), expires_in=FIVE_DAYS, actor=RENDER_FARM
    )
    assert figures(uow, org.id, year_lot) == row("4")
    assert reports.check_access(uow, org.id, ada.id).access

    # 5. The instant of expiry: nothing of the year can be spent.
    clock.current = YEAR_ENDS
    for member in (ada, ben):
        with pytest.raises(InsufficientCredits):
            usage.charge_usage(uow, org.id, member.id, credits("1"), actor=RENDER_FARM)

    # 6. A day later a request reaches the org: what it does first is settle what passed.
    clock.current = day(366)
    periods.settle_due(uow, org.id)
    (burn,) = reports.list_transfers(uow, org.id, kind=TransferKind.METERING, limit=1)
    assert burn.amount == credits("330")
    assert [(s.lot_id, s.amount) for s in burn.lots] == [(year_lot, credits("330"))]
    lapsed = reports.list_transfers(uow, org.id, kind=TransferKind.EXPIRY)
    names = {
        AccountKind.POOL: "pool",
        f"wallet:{ada.id}": "Ada",
        f"wallet:{ben.id}": "Ben",
        f"wallet:{cleo.id}": "Cleo",
    }
    assert sorted([names[t.debit_account], str(t.amount // 1_000_000)] for t in lapsed) == sorted(
        cells[:2] for cells in EXPIRED
    )
    assert {t.credit_account for t in lapsed} == {AccountKind.EXPIRED}
    assert all([(s.lot_id) for s in t.lots] == [year_lot] for t in lapsed)
    assert figures(uow, org.id, year_lot) == row("6")
    available = {m.id: m.credits_available for m in members.list_members(uow, org.id)}
    assert (available[ada.id], available[ben.id], available[cleo.id]) == (0, 0, credits("15"))
    assert not reports.check_access(uow, org.id, ada.id).access
    with pytest.raises(InsufficientCredits):
        usage.charge_usage(uow, org.id, ada.id, credits("1"), actor=RENDER_FARM)
    cleo_render = usage.charge_usage(uow, org.id, cleo.id, credits("5"), actor=RENDER_FARM)
    assert [(s.lot_id, s.amount) for s in cleo_render.transfer.lots] == [(grant_lot, credits("5"))]
    assert figures(uow, org.id, year_lot) == row("6b")

    # 7. The holds end: a capture spends the expired year's held credits, the rest lapses.
    clock.current = day(366) + timedelta(hours=1)
    captured = holds.capture_hold(uow, org.id, ben_hold.id, credits("25"), actor=RENDER_FARM)
    assert [(s.lot_id, s.amount) for s in captured.transfer.lots] == [(year_lot, credits("25"))]
    voided = holds.void_hold(uow, org.id, ada_hold.id, actor=RENDER_FARM)
    assert voided.status == "voided"
    at_once = reports.list_transfers(uow, org.id, kind=TransferKind.EXPIRY, limit=2)
    assert [(t.debit_account, t.amount, t.created_at) for t in at_once] == [
        (f"wallet:{ada.id}", credits("20"), clock.current),
        (f"wallet:{ben.id}", credits("15"), clock.current),
    ]
    assert figures(uow, org.id, year_lot) == row("7")
    # Nothing burns from an empty pool: a week on, the same figures.
    clock.advance(days=7)
    assert figures(uow, org.id, year_lot) == row("7")

    report = audit.audit(uow, org.id)
    assert report.clean, report.breaches
    assert lot_breaches(uow, org.id) == []


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
