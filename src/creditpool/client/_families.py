"""The calls of pools inside pools (version 1.2): an org's children, and credits between a
parent's pool and a child's."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from creditpool.client._calls import (
    Call,
    ListCall,
    decimal_string,
    list_query,
    optional_decimal_string,
    parsed,
    segment,
    without_none,
)
from creditpool.client._models import Balance, Model, Org, SettingsChange
from creditpool.client._people import settings_body


class FamilyTransfer(Model):
    """A move between a parent's pool and its child's: one batch in both ledgers, and both
    balances after it."""

    batch_id: str
    amount: Decimal
    parent: Balance
    child: Balance


def create_child(
    *,
    org: str,
    name: str,
    owner_email: str,
    settings: SettingsChange | None = None,
    idempotency_key: str | None = None,
) -> Call[Org]:
    """Open an org one level below `org` (its owner or an operator), three levels at most."""
    body: dict[str, Any] = {"name": name, "owner_email": owner_email}
    if settings is not None:
        body["settings"] = settings_body(settings)
    return Call(
        "POST",
        f"/orgs/{segment(org)}/children",
        parsed(Org),
        body=body,
        idempotency_key=idempotency_key,
    )


def list_children(*, org: str, limit: int | None = None) -> ListCall[Org]:
    """The org's children by name, each with its balance and roll-up (owner, managers)."""
    return ListCall(f"/orgs/{segment(org)}/children", parsed(Org), list_query(limit))


def allot_to_child(
    *, org: str, child: str, amount: Decimal | int, idempotency_key: str | None = None
) -> Call[FamilyTransfer]:
    """Move `amount` from the org's pool to its child's; all or nothing."""
    return Call(
        "POST",
        f"/orgs/{segment(org)}/children/{segment(child)}/allocations",
        parsed(FamilyTransfer),
        body={"amount": decimal_string(amount)},
        idempotency_key=idempotency_key,
    )


def take_back_from_child(
    *,
    org: str,
    child: str,
    amount: Decimal | int | None = None,
    idempotency_key: str | None = None,
) -> Call[FamilyTransfer]:
    """Move `amount` (None: all the child has available) from the child's pool back to the
    org's; all or nothing."""
    return Call(
        "POST",
        f"/orgs/{segment(org)}/children/{segment(child)}/revocations",
        parsed(FamilyTransfer),
        body=without_none({"amount": optional_decimal_string(amount)}),
        idempotency_key=idempotency_key,
    )
