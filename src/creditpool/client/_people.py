"""The calls about users, tokens and orgs (their settings, purchases, ledger and API keys)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from creditpool.client._calls import (
    Call,
    ListCall,
    decimal_string,
    list_query,
    nothing,
    optional_decimal_string,
    parsed,
    segment,
    timestamp,
    without_none,
)
from creditpool.client._models import (
    ApiKey,
    Balance,
    Lot,
    Me,
    NewApiKey,
    NewToken,
    Org,
    PersonalToken,
    Settings,
    SettingsChange,
    Transfer,
    User,
)


def sign_up(
    *, email: str, password: str, name: str, idempotency_key: str | None = None
) -> Call[User]:
    """Create a user (no token needed); 409 AlreadyExists if the e-mail is taken."""
    body = {"email": email, "password": password, "name": name}
    return Call("POST", "/users", parsed(User), body=body, idempotency_key=idempotency_key)


def create_token(
    *,
    email: str,
    password: str,
    name: str | None = None,
    expires_in: int | None = None,
    idempotency_key: str | None = None,
) -> Call[NewToken]:
    """Exchange an e-mail and password for a personal token (shown once), named and expiring
    after `expires_in` seconds if asked."""
    body = without_none(
        {"email": email, "password": password, "name": name, "expires_in": expires_in}
    )
    return Call("POST", "/tokens", parsed(NewToken), body=body, idempotency_key=idempotency_key)


def tokens(*, limit: int | None = None) -> ListCall[PersonalToken]:
    """The caller's live personal tokens, never the tokens themselves."""
    return ListCall("/tokens", parsed(PersonalToken), list_query(limit))


def revoke_token(*, token_id: str) -> Call[None]:
    """Stop one of the caller's personal tokens working at once."""
    return Call("DELETE", f"/tokens/{segment(token_id)}", nothing)


def me() -> Call[Me]:
    """The signed-in user and the orgs it belongs to."""
    return Call("GET", "/me", parsed(Me))


def settings_body(change: SettingsChange) -> dict[str, Any]:
    """The JSON of a settings change: only the parts given."""
    body: dict[str, Any] = without_none(
        {"returnable": change.returnable, "timezone": change.timezone}
    )
    if change.auto_allocation is not None:
        auto = change.auto_allocation
        body["auto_allocation"] = without_none(
            {
                "enabled": auto.enabled,
                "bundle": optional_decimal_string(auto.bundle),
                "max_per_member": optional_decimal_string(auto.max_per_member),
                "reclaim": auto.reclaim,
            }
        )
        if auto.period is not None:
            # "off" is sent as null, which removes the period; absent keeps it.
            body["auto_allocation"]["period"] = None if auto.period == "off" else auto.period
    if change.seat_rates is not None:
        rates = change.seat_rates
        body["seat_rates"] = without_none(
            {
                "licensed": optional_decimal_string(rates.licensed),
                "unlicensed": optional_decimal_string(rates.unlicensed),
                "external": optional_decimal_string(rates.external),
            }
        )
    if change.alerts is not None:
        # Both thresholds are sent: None is "off", not "unchanged".
        body["alerts"] = {
            "low_balance": optional_decimal_string(change.alerts.low_balance),
            "days_left": change.alerts.days_left,
        }
    return body


def create_org(
    *,
    name: str,
    owner_email: str,
    settings: SettingsChange | None = None,
    idempotency_key: str | None = None,
) -> Call[Org]:
    """Open an org for an existing user, its owner (operator only)."""
    body: dict[str, Any] = {"name": name, "owner_email": owner_email}
    if settings is not None:
        body["settings"] = settings_body(settings)
    return Call("POST", "/orgs", parsed(Org), body=body, idempotency_key=idempotency_key)


def orgs(*, limit: int | None = None) -> ListCall[Org]:
    """Every org for an operator; the orgs a user runs; an API key's org."""
    return ListCall("/orgs", parsed(Org), list_query(limit))


def get_org(*, org: str) -> Call[Org]:
    """One org with its settings, balance now and summed usage."""
    return Call("GET", f"/orgs/{segment(org)}", parsed(Org))


def update_settings(*, org: str, change: SettingsChange) -> Call[Settings]:
    """Change any part of an org's settings (owner); the rest keeps its value."""
    return Call(
        "PATCH", f"/orgs/{segment(org)}/settings", parsed(Settings), body=settings_body(change)
    )


def record_purchase(
    *,
    org: str,
    amount: Decimal | int,
    reference: str | None = None,
    expires_at: datetime | None = None,
    priority: int | None = None,
    idempotency_key: str | None = None,
) -> Call[Transfer]:
    """Credit the org's pool with credits it bought (operator): a new lot, which lapses at
    `expires_at` (a future time; None: never) and is spent before lots of higher `priority`
    (0 to 100; None: the server's default, 50)."""
    body = without_none(
        {
            "amount": decimal_string(amount),
            "reference": reference,
            "expires_at": None if expires_at is None else timestamp(expires_at),
            "priority": priority,
        }
    )
    return Call(
        "POST",
        f"/orgs/{segment(org)}/purchases",
        parsed(Transfer),
        body=body,
        idempotency_key=idempotency_key,
    )


def pause(*, org: str, idempotency_key: str | None = None) -> Call[Org]:
    """Pause the org (owner): no usage, no holds, no seat burn."""
    return Call("POST", f"/orgs/{segment(org)}/pause", parsed(Org), idempotency_key=idempotency_key)


def resume(*, org: str, idempotency_key: str | None = None) -> Call[Org]:
    """Resume a paused org (owner)."""
    return Call(
        "POST", f"/orgs/{segment(org)}/resume", parsed(Org), idempotency_key=idempotency_key
    )


def balance(*, org: str, at: datetime | None = None) -> Call[Balance]:
    """The org's balance now, or as it will stand at `at` (not in the past)."""
    query = {} if at is None else {"at": timestamp(at)}
    return Call("GET", f"/orgs/{segment(org)}/balance", parsed(Balance), query)


def transfers(
    *, org: str, member: str | None = None, kind: str | None = None, limit: int | None = None
) -> ListCall[Transfer]:
    """The org's ledger, newest first; only one member's with `member`, one kind's with
    `kind`."""
    query = list_query(limit, member=member, kind=kind)
    return ListCall(f"/orgs/{segment(org)}/transfers", parsed(Transfer), query)


def list_lots(*, org: str, limit: int | None = None) -> ListCall[Lot]:
    """The org's lots in the order they are spent (owner, managers, operator; version 1.2)."""
    return ListCall(f"/orgs/{segment(org)}/lots", parsed(Lot), list_query(limit))


def create_api_key(
    *,
    org: str,
    name: str,
    scopes: Sequence[str] = ("usage",),
    idempotency_key: str | None = None,
) -> Call[NewApiKey]:
    """Make an org API key for the vendor's product (owner); the key is shown once."""
    return Call(
        "POST",
        f"/orgs/{segment(org)}/api-keys",
        parsed(NewApiKey),
        body={"name": name, "scopes": list(scopes)},
        idempotency_key=idempotency_key,
    )


def api_keys(*, org: str, limit: int | None = None) -> ListCall[ApiKey]:
    """The org's API keys (owner), never the keys themselves."""
    return ListCall(f"/orgs/{segment(org)}/api-keys", parsed(ApiKey), list_query(limit))


def revoke_api_key(*, org: str, key_id: str) -> Call[None]:
    """Stop an org API key working at once (owner)."""
    return Call("DELETE", f"/orgs/{segment(org)}/api-keys/{segment(key_id)}", nothing)
