"""Buying credits through Stripe Checkout: a payment page for an owner, and Stripe's report
that it was paid, which credits the pool exactly once.

Starting a checkout asks Stripe for a Checkout Session (with the official `stripe` library,
outside any database transaction: a network call holds no lock), then records it, open. The
session carries the org's id as `client_reference_id`, and Stripe is given an idempotency key
made from the caller's, so a retried start opens no second page.

Stripe reports a payment by POSTing an event signed with the webhook secret. The signature is
verified with `stripe.Webhook.construct_event` before anything is read; a bad, stale or missing
one is refused (InvalidSignature) and changes nothing. A paid session's row goes from open to
completed in the transaction that posts its purchase, the org's row locked first: a replayed
or concurrent event finds it completed and credits nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import stripe
from sqlalchemy import select

from creditpool.config import Config
from creditpool.domain.amounts import MICROS_PER_CREDIT
from creditpool.domain.errors import CheckoutUnavailable, InvalidInput, InvalidSignature, NotFound
from creditpool.domain.purchases import CheckoutStatus, checkout_quantity
from creditpool.services import idempotency
from creditpool.services.credits import check_amount
from creditpool.services.lookups import load_org
from creditpool.services.purchasing import post_purchase
from creditpool.services.transactions import check_key, run_write
from creditpool.storage.ids import new_id
from creditpool.storage.schema import CheckoutSession
from creditpool.storage.unit_of_work import UnitOfWork

# The events that say a session's payment is in: at once (cards), or later (bank debits).
_PAID_EVENTS = ("checkout.session.completed", "checkout.session.async_payment_succeeded")
_EXPIRED_EVENT = "checkout.session.expired"
_PAID = ("paid", "no_payment_required")


@dataclass(frozen=True)
class StripeSettings:
    """How to reach Stripe and what a credit costs; checkout works only with both secrets."""

    secret_key: str | None
    webhook_secret: str | None
    unit_price: int  # one credit, in the currency's minor units
    currency: str
    api_base: str | None = None  # Stripe's API unless set (a local stand-in, in tests)

    @property
    def configured(self) -> bool:
        """Whether checkout is on: both the secret key and the webhook secret are set."""
        return bool(self.secret_key and self.webhook_secret)


def stripe_settings(config: Config) -> StripeSettings:
    """The Stripe part of the server's configuration."""
    return StripeSettings(
        secret_key=config.stripe_secret_key,
        webhook_secret=config.stripe_webhook_secret,
        unit_price=config.credit_price,
        currency=config.currency,
        api_base=config.stripe_api_base,
    )


@dataclass(frozen=True)
class CheckoutView:
    """A payment page opened for credits."""

    id: str
    org_id: str
    provider_session_id: str
    url: str
    amount: int
    status: CheckoutStatus
    created_at: datetime


@dataclass(frozen=True)
class StripeOutcome:
    """What one of Stripe's events did: the checkout it was about (if ours) and whether this
    event credited the pool (False for a replay, another event, or a session not ours)."""

    event_type: str
    checkout_id: str | None
    credited: bool


def start_checkout(
    uow: UnitOfWork,
    org_id: str,
    amount: int,
    *,
    settings: StripeSettings,
    success_url: str,
    cancel_url: str,
    actor: str,
    idempotency_key: str | None = None,
) -> CheckoutView:
    """Open a Stripe Checkout page selling `amount` (whole) credits to the org, and record it.

    CheckoutUnavailable when Stripe is not configured or does not answer; InvalidAmount for a
    fraction of a credit or a total over what one payment takes."""
    if not settings.configured or settings.secret_key is None:
        raise CheckoutUnavailable("buying credits by card is not set up on this server")
    check_amount(amount)
    quantity = checkout_quantity(amount, settings.unit_price)
    check_key(idempotency_key)
    with uow:
        org_name = load_org(uow, org_id).name
        # A key seen before is answered from its record alone: Stripe is not asked again.
        seen = idempotency_key is not None and (
            idempotency.request_key(uow, org_id, actor, idempotency_key) is not None
        )
    arguments = {"amount": amount}
    if seen:
        return run_write(
            uow,
            _not_replayed,
            org_id=org_id,
            actor=actor,
            key=idempotency_key,
            operation="start_checkout",
            arguments=arguments,
            result_type=CheckoutView,
        )
    client = stripe.StripeClient(
        settings.secret_key,
        base_addresses={"api": settings.api_base} if settings.api_base else None,
        max_network_retries=2,
    )
    options: dict[str, Any] = {}
    if idempotency_key is not None:
        # Stripe answers a retry under the same key with the same session.
        options["idempotency_key"] = f"creditpool:{org_id}:{actor}:{idempotency_key}"[:255]
    try:
        session = client.v1.checkout.sessions.create(
            params={
                "mode": "payment",
                "line_items": [
                    {
                        "price_data": {
                            "currency": settings.currency,
                            "unit_amount": settings.unit_price,
                            "product_data": {"name": f"Credits for {org_name}"},
                        },
                        "quantity": quantity,
                    }
                ],
                "client_reference_id": org_id,
                "metadata": {"org_id": org_id, "credits": str(quantity)},
                "success_url": success_url,
                "cancel_url": cancel_url,
            },
            options=options,  # type: ignore[arg-type]
        )
    except stripe.StripeError as error:
        raise CheckoutUnavailable(
            "the payment provider could not open a payment page now; try again later"
        ) from error
    if not session.id or not session.url:
        raise CheckoutUnavailable("the payment provider answered without a payment page")
    url, provider_id = session.url, session.id

    def apply() -> CheckoutView:
        load_org(uow, org_id)
        row = CheckoutSession(
            org_id=org_id,
            id=new_id("chk"),
            provider_session_id=provider_id,
            amount=quantity * MICROS_PER_CREDIT,
            unit_price=settings.unit_price,
            currency=settings.currency,
            status=CheckoutStatus.OPEN,
            created_by=actor,
            created_at=uow.now,
        )
        uow.session.add(row)
        uow.session.flush()
        return _view(row, url)

    return run_write(
        uow,
        apply,
        org_id=org_id,
        actor=actor,
        key=idempotency_key,
        operation="start_checkout",
        arguments=arguments,
        result_type=CheckoutView,
    )


def _not_replayed() -> CheckoutView:
    """A key found a moment ago was gone when replayed (its day ran out): ask again."""
    raise CheckoutUnavailable("this checkout could not be opened again; try again")


def _view(row: CheckoutSession, url: str) -> CheckoutView:
    return CheckoutView(
        id=row.id,
        org_id=row.org_id,
        provider_session_id=row.provider_session_id,
        url=url,
        amount=row.amount,
        status=CheckoutStatus(row.status),
        created_at=row.created_at,
    )


def receive_stripe_event(
    uow: UnitOfWork, payload: bytes, signature: str | None, *, settings: StripeSettings
) -> StripeOutcome:
    """Verify one of Stripe's events by its `Stripe-Signature` and act on it: a paid session of
    ours credits its org's pool once; an expired one is marked so; anything else is ignored.

    InvalidSignature (nothing read, nothing changed) for a bad, stale or missing signature;
    CheckoutUnavailable when no webhook secret is configured."""
    if settings.webhook_secret is None:
        raise CheckoutUnavailable("buying credits by card is not set up on this server")
    try:
        event = stripe.Webhook.construct_event(payload, signature, settings.webhook_secret)
    except (stripe.SignatureVerificationError, UnicodeDecodeError) as error:
        raise InvalidSignature("the Stripe-Signature header does not sign this body") from error
    except ValueError as error:  # signed, but not JSON: Stripe never sends that
        raise InvalidInput("the event is not JSON") from error
    body = event.to_dict()  # plain data: what Stripe sent, verified
    event_type = str(body.get("type", ""))
    data = body.get("data")
    session = data.get("object") if isinstance(data, dict) else None
    if not isinstance(session, dict):
        return StripeOutcome(event_type, None, credited=False)
    org_id, provider_id = session.get("client_reference_id"), session.get("id")
    if not isinstance(org_id, str) or not isinstance(provider_id, str):
        return StripeOutcome(event_type, None, credited=False)
    if event_type in _PAID_EVENTS and session.get("payment_status") in _PAID:
        return _complete(uow, org_id, provider_id, event_type, reference=provider_id)
    if event_type == _EXPIRED_EVENT:
        return _expire(uow, org_id, provider_id, event_type)
    return StripeOutcome(event_type, None, credited=False)


def _locked_checkout(uow: UnitOfWork, org_id: str, provider_id: str) -> CheckoutSession | None:
    return uow.session.scalars(
        select(CheckoutSession)
        .where(
            CheckoutSession.org_id == org_id,
            CheckoutSession.provider_session_id == provider_id,
        )
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()


def _complete(
    uow: UnitOfWork, org_id: str, provider_id: str, event_type: str, *, reference: str
) -> StripeOutcome:
    """Credit the pool for a paid session, once: the row's state is read under the org's lock."""

    def apply() -> StripeOutcome:
        try:
            org = load_org(uow, org_id, lock=True)
        except NotFound:
            return StripeOutcome(event_type, None, credited=False)  # not a session of ours
        row = _locked_checkout(uow, org_id, provider_id)
        if row is None:
            return StripeOutcome(event_type, None, credited=False)
        if row.status == CheckoutStatus.COMPLETED:
            return StripeOutcome(event_type, row.id, credited=False)  # a replay
        bought = post_purchase(
            uow,
            org,
            row.amount,
            reference=f"stripe {reference}"[:200],
            actor=f"stripe:{row.id}",
        )
        row.status = CheckoutStatus.COMPLETED
        row.transfer_id = bought.id
        row.completed_at = uow.now
        uow.session.flush()
        return StripeOutcome(event_type, row.id, credited=True)

    return run_write(uow, apply)


def _expire(uow: UnitOfWork, org_id: str, provider_id: str, event_type: str) -> StripeOutcome:
    """Mark an open session expired (a completed one stays completed)."""

    def apply() -> StripeOutcome:
        row = _locked_checkout(uow, org_id, provider_id)
        if row is None:
            return StripeOutcome(event_type, None, credited=False)
        if row.status == CheckoutStatus.OPEN:
            row.status = CheckoutStatus.EXPIRED
        return StripeOutcome(event_type, row.id, credited=False)

    return run_write(uow, apply)


def list_checkouts(
    uow: UnitOfWork, org_id: str, *, limit: int
) -> list[tuple[str, int, CheckoutStatus, datetime]]:
    """Return (id, amount, status, created_at) of the org's latest checkouts, newest first."""
    with uow:
        rows = uow.session.execute(
            select(
                CheckoutSession.id,
                CheckoutSession.amount,
                CheckoutSession.status,
                CheckoutSession.created_at,
            )
            .where(CheckoutSession.org_id == org_id)
            .order_by(CheckoutSession.id.desc())
            .limit(limit)
        ).tuples()
        return [(id_, amount, CheckoutStatus(status), at) for id_, amount, status, at in rows]
