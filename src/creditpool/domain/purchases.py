"""The words of buying credits: a purchase request's and a checkout's life, and what a
checkout costs.

A request is pending until an operator decides it once: approved (one purchase credits the
pool) or declined. A checkout (a payment page of the provider) is open until the provider
reports it paid (completed: one purchase credits the pool) or expired.
"""

from __future__ import annotations

from enum import StrEnum

from creditpool.domain.amounts import MICROS_PER_CREDIT
from creditpool.domain.errors import InvalidAmount

# The most one checkout may charge, in the currency's minor units: Stripe's own ceiling
# (999,999.99 in a two-decimal currency).
MAX_CHECKOUT_TOTAL = 99_999_999


class PurchaseRequestStatus(StrEnum):
    """Where an owner's request for credits stands."""

    PENDING = "pending"
    APPROVED = "approved"
    DECLINED = "declined"


class CheckoutStatus(StrEnum):
    """Where a payment page opened for credits stands."""

    OPEN = "open"
    COMPLETED = "completed"
    EXPIRED = "expired"


def checkout_quantity(amount: int, unit_price: int) -> int:
    """Return how many whole credits a checkout of `amount` micro-credits sells, at `unit_price`
    minor units a credit; InvalidAmount for a fraction of a credit or a total over the ceiling."""
    credits, fraction = divmod(amount, MICROS_PER_CREDIT)
    if fraction or credits < 1:
        raise InvalidAmount("a checkout buys whole credits, at least one")
    if credits * unit_price > MAX_CHECKOUT_TOTAL:
        raise InvalidAmount("that is more than one payment can take: buy fewer credits at a time")
    return credits


# Currencies Stripe counts in whole units (no minor unit): a price in them has no decimals.
ZERO_DECIMAL_CURRENCIES = frozenset(
    [
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    ]
)


def format_price(minor_units: int, currency: str) -> str:
    """Return a price for people: `format_price(50, "usd")` is "0.50 USD"."""
    code = currency.upper()
    if currency.lower() in ZERO_DECIMAL_CURRENCIES:
        return f"{minor_units} {code}"
    whole, cents = divmod(minor_units, 100)
    return f"{whole}.{cents:02d} {code}"
