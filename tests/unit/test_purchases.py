"""What a checkout sells and costs: whole credits, within one payment's ceiling, priced in
the currency's minor units."""

from __future__ import annotations

import pytest

from creditpool.domain.amounts import credits
from creditpool.domain.errors import InvalidAmount
from creditpool.domain.purchases import MAX_CHECKOUT_TOTAL, checkout_quantity, format_price


def test_a_checkout_sells_whole_credits_within_one_payment() -> None:
    assert checkout_quantity(credits("12"), 50) == 12
    assert checkout_quantity(credits(str(MAX_CHECKOUT_TOTAL // 50)), 50) == MAX_CHECKOUT_TOTAL // 50
    for refused in ("2.5", "0.000001"):
        with pytest.raises(InvalidAmount):
            checkout_quantity(credits(refused), 50)
    with pytest.raises(InvalidAmount):
        checkout_quantity(credits(str(MAX_CHECKOUT_TOTAL // 50 + 1)), 50)


def test_prices_read_in_the_currency_s_units() -> None:
    assert format_price(50, "usd") == "0.50 USD"
    assert format_price(600, "eur") == "6.00 EUR"
    assert format_price(1234, "gbp") == "12.34 GBP"
    assert format_price(500, "jpy") == "500 JPY"  # yen have no minor unit
