"""Lots: a free trial is spent before the credits the school paid for, everywhere.

On 1 January 2026 the vendor grants the Harbour school a free trial of 60 credits (a lot of
priority 10, expiring in 30 days, on 31 January at 00:00 UTC), and the school buys a year of
1,000 credits (priority 50, expiring on 1 January 2027). The school pays for its seats: the
owner, Ada and Ben are licensed at 365 credits a year, 1 credit a day each, 3 a day in all.
Whenever credits leave the pool or a wallet they come from the trial first (lowest priority),
then from the paid lot:

1. Day 0: the owner allots 20 to Ada and to Ben, both from the trial (20 of it left in the
   pool).
2. Day 1: Ada renders for 5, from the trial in her wallet (15 left).
3. Day 10: the owner allots 10 more to Ada. The burn of 10 days, 3 x 10 = 30, is posted first
   and takes the trial's last 20 in the pool, then 10 of the paid lot; Ada's 10 come from the
   paid lot.
4. Day 20: Ada renders for 12, from the trial (3 left in her wallet).
5. Day 29: Ada renders for 8: the trial's last 3, then 5 of the paid lot. One render, paid by
   two lots, in that order.
6. Day 30, 00:00: the trial expires; the worker passes. It posts the burn up to that instant
   (days 10 to 30: 60, all from the paid lot), then what is left of the trial lapses: Ben's
   20, posted as an `expiry` transfer from his wallet to `expired`.

Ada's history, oldest first (transfer kind, credits, the lots that paid it):

    day  kind        amount  lots
    0    allocation  20      trial 20
    1    usage       5       trial 5
    10   allocation  10      paid 10
    20   usage       12      trial 12
    29   usage       8       trial 3, paid 5

Ben's: an allocation of 20 (trial 20) on day 0, then an expiry of 20 (trial 20) on day 30.
The lots on day 29 and after the expiry (list_lots, the burn accrued but not posted
included):

    day  lot    amount  in_pool  in_wallets  used  metered  expired
    29   trial  60      0        20          20    20       0
    29   paid   1000    923      5           5     67       0
    30   trial  60      0        0           20    20       20
    30   paid   1000    920      5           5     70       0

Every expected figure is read from these tables or worked out above, never from the code. Runs
on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from creditpool.config import Config
from creditpool.domain.amounts import credits, format_credits
from creditpool.domain.model import TransferKind
from creditpool.domain.policies import SettingsChange
from creditpool.services import audit, reports, usage
from creditpool.services import credits as credit_service
from creditpool.services.targets import Target
from creditpool.services.views import TransferView
from creditpool.storage.unit_of_work import UnitOfWork
from creditpool.worker import run_once
from tests.support.clock import FakeClock
from tests.support.factories import OPERATOR, add_members, make_org
from tests.support.lot_books import lot_breaches, lots_of
from tests.support.worked_tables import docstring_table

NEW_YEAR = datetime(2026, 1, 1, tzinfo=UTC)
TRIAL_ENDS = NEW_YEAR + timedelta(days=30)
RENDER_FARM = "api-key:render-farm"
SEAT_A_DAY = SettingsChange(rate_licensed=credits("365"), rate_unlicensed=0, rate_external=0)
LOT_COLUMNS = ("amount", "in_pool", "in_wallets", "used", "metered", "expired")


def table(heading: str) -> list[list[str]]:
    """The rows of this docstring's table whose heading starts with `heading`."""
    return docstring_table(__doc__, heading)


def history_rows(transfers: list[TransferView], names: dict[str, str]) -> list[list[str]]:
    """A member's transfers, oldest first, as the docstring's history table writes them."""
    return [
        [
            str((transfer.created_at - NEW_YEAR).days),
            transfer.kind,
            format_credits(transfer.amount),
            ", ".join(f"{names[s.lot_id]} {format_credits(s.amount)}" for s in transfer.lots),
        ]
        for transfer in reversed(transfers)
    ]


def lot_rows(uow: UnitOfWork, org_id: str, day: int, names: dict[str, str]) -> list[list[str]]:
    """The org's lots now, as the docstring's lot table writes them."""
    return [
        [str(day), names[lot.id]] + [format_credits(getattr(lot, column)) for column in LOT_COLUMNS]
        for lot in lots_of(uow, org_id)
    ]


def test_the_trial_is_spent_first_and_a_render_is_paid_by_two_lots(
    uow: UnitOfWork, clock: FakeClock
) -> None:
    assert clock.current == NEW_YEAR
    org = make_org(uow, name="Harbour school", settings=SEAT_A_DAY)
    trial = credit_service.record_purchase(
        uow,
        org.id,
        credits("60"),
        reference="free trial",
        actor="operator:vendor",
        priority=10,
        expires_at=TRIAL_ENDS,
    )
    paid = credit_service.record_purchase(
        uow,
        org.id,
        credits("1000"),
        reference="a year",
        actor=OPERATOR,
        priority=50,
        expires_at=NEW_YEAR + timedelta(days=365),
    )
    names = {trial.lots[0].lot_id: "trial", paid.lots[0].lot_id: "paid"}
    # The pool's lots in the order they are spent: the trial (priority 10), then the paid lot.
    assert [(names[lot.id], lot.priority) for lot in lots_of(uow, org.id)] == [
        ("trial", 10),
        ("paid", 50),
    ]
    ada, ben = add_members(uow, org.id, 2)
    assert reports.get_balance(uow, org.id).burn_rate_per_year == credits("365") * 3

    # 1. Day 0: 20 each, from the trial.
    batch = credit_service.allocate_credits(
        uow, org.id, Target.members([ada.id, ben.id]), credits("20"), actor=OPERATOR
    )
    assert batch.total == credits("40")

    # 2. Day 1: Ada renders for 5.
    clock.current = NEW_YEAR + timedelta(days=1)
    usage.charge_usage(uow, org.id, ada.id, credits("5"), actor=RENDER_FARM)

    # 3. Day 10: 10 more for Ada; the burn of 10 days is posted first, the trial first.
    clock.current = NEW_YEAR + timedelta(days=10)
    credit_service.allocate_credits(
        uow, org.id, Target.members([ada.id]), credits("10"), actor=OPERATOR
    )
    (burn,) = reports.list_transfers(uow, org.id, kind=TransferKind.METERING)
    assert burn.amount == credits("30")
    assert [(names[s.lot_id], s.amount) for s in burn.lots] == [
        ("trial", credits("20")),
        ("paid", credits("10")),
    ]

    # 4. Day 20: a render of 12, from the trial.
    clock.current = NEW_YEAR + timedelta(days=20)
    usage.charge_usage(uow, org.id, ada.id, credits("12"), actor=RENDER_FARM)

    # 5. Day 29: a render of 8 takes the trial's last 3, then 5 of the paid lot.
    clock.current = NEW_YEAR + timedelta(days=29)
    render = usage.charge_usage(uow, org.id, ada.id, credits("8"), actor=RENDER_FARM).transfer
    assert [(names[s.lot_id], s.amount) for s in render.lots] == [
        ("trial", credits("3")),
        ("paid", credits("5")),
    ]
    assert render.member_id == ada.id
    history = history_rows(reports.list_transfers(uow, org.id, member_id=ada.id), names)
    print("\nAda's history, oldest first:")
    for row in [["day", "kind", "amount", "lots"], *history]:
        print("    {:<5}{:<12}{:<8}{}".format(*row))
    assert history == table("day  kind")
    day_29 = table("day  lot")[:2]
    assert lot_rows(uow, org.id, 29, names) == day_29

    # 6. Day 30, 00:00: the trial expires when the worker passes.
    clock.current = TRIAL_ENDS
    run_once(uow, Config())
    burns = reports.list_transfers(uow, org.id, kind=TransferKind.METERING)
    assert [(t.created_at, t.amount) for t in burns] == [
        (TRIAL_ENDS, credits("60")),
        (NEW_YEAR + timedelta(days=10), credits("30")),
    ]
    assert [(names[s.lot_id], s.amount) for s in burns[0].lots] == [("paid", credits("60"))]
    (lapsed,) = reports.list_transfers(uow, org.id, kind=TransferKind.EXPIRY)
    assert (lapsed.debit_account, lapsed.credit_account, lapsed.amount) == (
        f"wallet:{ben.id}",
        "expired",
        credits("20"),
    )
    assert history_rows(reports.list_transfers(uow, org.id, member_id=ben.id), names) == [
        ["0", "allocation", "20", "trial 20"],
        ["30", "expiry", "20", "trial 20"],
    ]
    assert lot_rows(uow, org.id, 30, names) == table("day  lot")[2:]

    # Every credit is somewhere: 1,060 = 920 in the pool + 5 in Ada's wallet + 25 used + 90
    # burnt + 20 expired.
    balance = reports.get_balance(uow, org.id)
    assert (balance.available, balance.allocated, balance.used, balance.metered) == (
        credits("920"),
        credits("5"),
        credits("25"),
        credits("90"),
    )
    assert balance.purchased == credits("1060")
    report = audit.audit(uow, org.id)
    assert report.clean, report.breaches
    assert lot_breaches(uow, org.id) == []
