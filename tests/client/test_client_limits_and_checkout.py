"""Through the client, against a server with its rate limits on and Stripe set up (a local
stand-in for Stripe's API), on each engine: a 429 is `RateLimited` with its Retry-After, and
a checkout answers the provider's hosted page."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from creditpool.client import AsyncClient, Client, RateLimited, Unauthenticated
from tests.client.conftest import OPERATOR_KEY, PASSWORD, unique_email
from tests.support.server import running_server
from tests.support.stripe import PAGE, StripeStandIn, stripe_stand_in


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def limited(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, StripeStandIn]]:
    """A server that limits failed passwords to 2 and sells credits through the stand-in."""
    directory: Path = tmp_path_factory.mktemp(f"client-limits-{request.param}")
    url = (
        f"sqlite:///{directory / 'limits.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgresql_url")
    )
    with stripe_stand_in() as stripe:
        environment = {
            "CREDITPOOL_OPERATOR_KEY": OPERATOR_KEY,
            "CREDITPOOL_RATE_LIMITS": "on",
            "CREDITPOOL_FAILED_PASSWORD_LIMIT": "2",
            "CREDITPOOL_STRIPE_SECRET_KEY": "sk_test_client_stand_in",
            "CREDITPOOL_STRIPE_WEBHOOK_SECRET": "whsec_client_test_secret",
            "CREDITPOOL_STRIPE_API_BASE": stripe.url,
            "CREDITPOOL_CREDIT_PRICE": "50",
        }
        with running_server(directory, environment=environment, database_url=url) as server:
            yield server.url, stripe


def test_too_many_failed_passwords_is_rate_limited_with_retry_after(
    limited: tuple[str, StripeStandIn],
) -> None:
    url, _ = limited
    email = unique_email("limited")
    with Client(url) as anonymous:
        anonymous.sign_up(email=email, password=PASSWORD, name="Lim")
        for _ in range(2):
            with pytest.raises(Unauthenticated):
                anonymous.create_token(email=email, password="wrong password, again")
        with pytest.raises(RateLimited) as limited_error:
            anonymous.create_token(email=email, password=PASSWORD)
    assert (limited_error.value.status, limited_error.value.code) == (429, "rate_limited")
    assert limited_error.value.retry_after is not None
    assert limited_error.value.retry_after > 0


@pytest.mark.anyio
async def test_an_owner_checks_out_on_the_providers_page(
    limited: tuple[str, StripeStandIn],
) -> None:
    url, stripe = limited
    owner_email = unique_email("buyer")
    async with AsyncClient(url) as anonymous:
        await anonymous.sign_up(email=owner_email, password=PASSWORD, name="Buyer")
        token = await anonymous.create_token(email=owner_email, password=PASSWORD)
    async with AsyncClient(url, token=OPERATOR_KEY) as operator:
        org = await operator.create_org(name="Buying school", owner_email=owner_email)
    async with AsyncClient(url, token=token.token) as owner:
        checkout = await owner.checkout(org=org.id, amount=Decimal(20))
    assert checkout.url.startswith(PAGE)
    [session] = [call for call in stripe.calls if call.form.get("client_reference_id")]
    assert session.form["line_items[0][quantity]"] == "20"
