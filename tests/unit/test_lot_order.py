"""The spending order of lots, and taking credits from an account's lots in it.

services/lots.py takes every debit of a pool or a wallet with `take`, in the order
`Holding.order` gives: lowest priority, then soonest expiry (never-expiring last), then oldest,
then id. These properties check it against the rule as written, not against its code: the
order is total and is that rule; `take` takes exactly the amount asked, never more than a lot
can spend (nothing of an expired lot, nothing held), and touches a lot only once every lot
before it in the order has nothing left to spend.
"""

from __future__ import annotations

from copy import deepcopy
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from creditpool.services.lots import Holding, take

START = datetime(2026, 1, 1, tzinfo=UTC)
# Few distinct instants, priorities and amounts, so that ties and edge cases come up often.
INSTANTS = [START + timedelta(days=days) for days in (0, 1, 30, 365)]
expiries = st.one_of(st.none(), st.sampled_from(INSTANTS))
priorities = st.sampled_from([0, 10, 50, 100])


@st.composite
def holding(draw: st.DrawFn, lot_id: str) -> Holding:
    amount = draw(st.integers(min_value=0, max_value=5_000_000))
    return Holding(
        lot_id=lot_id,
        amount=amount,
        held=draw(st.integers(min_value=0, max_value=amount)),
        priority=draw(priorities),
        expires_at=draw(expiries),
        created_at=draw(st.sampled_from(INSTANTS)),
    )


@st.composite
def account(draw: st.DrawFn) -> list[Holding]:
    """The holdings of one account: up to 8 lots, each named once."""
    count = draw(st.integers(min_value=0, max_value=8))
    ids = draw(st.permutations([f"lot_{n:02d}" for n in range(count)]))
    return [draw(holding(lot_id)) for lot_id in ids]


def spendable(holding: Holding, now: datetime) -> int:
    """The rule: nothing of a lot expired at `now`, nothing held."""
    if holding.expires_at is not None and holding.expires_at <= now:
        return 0
    return holding.amount - holding.held


def rule(holding: Holding) -> tuple[int, bool, datetime, datetime, str]:
    """The spending order as the API document states it."""
    expiry = holding.expires_at or START  # compared only between lots that both expire
    return (
        holding.priority,
        holding.expires_at is None,
        expiry,
        holding.created_at,
        holding.lot_id,
    )


@settings(max_examples=100)
@given(holdings=account())
def test_the_order_is_total_and_is_the_stated_rule(holdings: list[Holding]) -> None:
    ordered = sorted(holdings, key=Holding.order)
    assert [h.lot_id for h in ordered] == [h.lot_id for h in sorted(holdings, key=rule)]
    # Total: no two lots of an account tie, so the order never depends on how rows arrive.
    assert len({h.order() for h in holdings}) == len(holdings)
    assert sorted(reversed(holdings), key=Holding.order) == ordered


@settings(max_examples=150)
@given(holdings=account(), now=st.sampled_from(INSTANTS), data=st.data())
def test_take_spends_in_order_exactly_what_can_be_spent(
    holdings: list[Holding], now: datetime, data: st.DataObject
) -> None:
    before = {h.lot_id: deepcopy(h) for h in holdings}
    can_spend = {lot_id: spendable(h, now) for lot_id, h in before.items()}
    # Up to one micro-credit more than the account can spend: a shortfall is refused whole.
    amount = data.draw(st.integers(min_value=1, max_value=sum(can_spend.values()) + 1))
    if amount > sum(can_spend.values()):
        with pytest.raises(RuntimeError):
            take(holdings, amount, now)
        return

    shares = take(holdings, amount, now)

    # Exactly the amount, each lot at most once, no empty share.
    assert sum(part for _, part in shares) == amount
    assert len({lot_id for lot_id, _ in shares}) == len(shares)
    assert all(part > 0 for _, part in shares)
    # Never more than a lot can spend: nothing expired, nothing held.
    for lot_id, part in shares:
        assert part <= can_spend[lot_id]
    # The holdings are changed by what was taken, and held credits stay held.
    taken = dict(shares)
    for h in holdings:
        assert h.amount == before[h.lot_id].amount - taken.get(h.lot_id, 0)
        assert h.held == before[h.lot_id].held
    # A lot is touched only when every lot before it in the order has nothing left to spend;
    # the shares come in that order.
    order = [h.lot_id for h in sorted(before.values(), key=rule)]
    assert [lot_id for lot_id, _ in shares] == [lot_id for lot_id in order if lot_id in taken]
    last = order.index(shares[-1][0])
    for lot_id in order[:last]:
        assert taken.get(lot_id, 0) == can_spend[lot_id]
    for lot_id in order[last + 1 :]:
        assert lot_id not in taken


@settings(max_examples=60)
@given(holdings=account(), now=st.sampled_from(INSTANTS))
def test_take_empties_an_account_to_its_held_and_expired_credits(
    holdings: list[Holding], now: datetime
) -> None:
    """Taking all an account can spend leaves each lot exactly what it could not spend."""
    left = {h.lot_id: h.amount - spendable(h, now) for h in holdings}
    everything = sum(spendable(h, now) for h in holdings)
    if everything == 0:
        assert take(holdings, 0, now) == []
        return
    take(holdings, everything, now)
    assert {h.lot_id: h.amount for h in holdings} == left
    with pytest.raises(RuntimeError):
        take(holdings, 1, now)
