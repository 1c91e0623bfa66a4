"""What the class manager shows the owner about buying credits: the requests made and their
outcome, and whether (and at what price) credits can be bought by card."""

from __future__ import annotations

from dataclasses import dataclass

from creditpool.config import Config
from creditpool.domain.purchases import format_price
from creditpool.services import purchase_requests
from creditpool.services.purchase_requests import PurchaseRequestView
from creditpool.storage.unit_of_work import UnitOfWork

REQUESTS_SHOWN = 20  # the newest requests listed; the API lists them all


@dataclass(frozen=True)
class BuyingPanel:
    """The "Buy credits" part of the class manager."""

    requests: list[PurchaseRequestView]
    more_requests: bool
    checkout: bool  # Stripe Checkout is configured
    price: str  # of one credit, for people ("0.50 USD")


def buying_panel(uow: UnitOfWork, org_id: str, config: Config) -> BuyingPanel:
    """Read the org's newest requests and the checkout settings."""
    requests = purchase_requests.list_purchase_requests(uow, org_id, limit=REQUESTS_SHOWN + 1)
    return BuyingPanel(
        requests=requests[:REQUESTS_SHOWN],
        more_requests=len(requests) > REQUESTS_SHOWN,
        checkout=config.checkout,
        price=format_price(config.credit_price, config.currency),
    )
