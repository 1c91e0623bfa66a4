"""The calls that move credits: allotments, revocations, usage, holds, batches, access."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal

from creditpool.client._calls import (
    Call,
    decimal_string,
    parsed,
    segment,
    without_none,
)
from creditpool.client._models import (
    Access,
    BatchResult,
    Hold,
    UsageEvent,
    UsageEventResult,
    UsageResult,
)

Targets = Sequence[str] | Literal["all"]


def _target(member_ids: Targets | None, group_id: str | None) -> dict[str, Any]:
    # Exactly one of the two is the server's rule (422 otherwise); sent as given.
    target: dict[str, Any] = {}
    if member_ids is not None:
        target["member_ids"] = member_ids if member_ids == "all" else list(member_ids)
    if group_id is not None:
        target["group_id"] = group_id
    return target


def allocate(
    *,
    org: str,
    amount: Decimal | int,
    member_ids: Targets | None = None,
    group_id: str | None = None,
    idempotency_key: str | None = None,
) -> Call[BatchResult]:
    """Give `amount` from the pool to each named member ("all": every active member whose
    role is member) or each active member of a group; all or nothing."""
    body = {**_target(member_ids, group_id), "amount": decimal_string(amount)}
    return Call(
        "POST",
        f"/orgs/{segment(org)}/allocations",
        parsed(BatchResult),
        body=body,
        idempotency_key=idempotency_key,
    )


def revoke(
    *,
    org: str,
    amount: Decimal | int | None = None,
    member_ids: Targets | None = None,
    group_id: str | None = None,
    idempotency_key: str | None = None,
) -> Call[BatchResult]:
    """Take `amount` (or all each can spend, without it) back to the pool from each named
    member or each member of a group; all or nothing."""
    body = _target(member_ids, group_id)
    if amount is not None:
        body["amount"] = decimal_string(amount)
    return Call(
        "POST",
        f"/orgs/{segment(org)}/revocations",
        parsed(BatchResult),
        body=body,
        idempotency_key=idempotency_key,
    )


def charge_usage(
    *,
    org: str,
    member: str,
    amount: Decimal | int,
    metrics: Mapping[str, int] | None = None,
    reference: str | None = None,
    idempotency_key: str | None = None,
) -> Call[UsageResult]:
    """Charge a member's wallet for work done (org API key or operator), topping it up first
    under automatic allocation."""
    body = without_none(
        {
            "amount": decimal_string(amount),
            "metrics": None if metrics is None else dict(metrics),
            "reference": reference,
        }
    )
    return Call(
        "POST",
        f"/orgs/{segment(org)}/members/{segment(member)}/usage",
        parsed(UsageResult),
        body=body,
        idempotency_key=idempotency_key,
    )


def place_hold(
    *,
    org: str,
    member: str,
    amount: Decimal | int,
    expires_in: int | None = None,
    reference: str | None = None,
    idempotency_key: str | None = None,
) -> Call[Hold]:
    """Reserve credits in a member's wallet for long work (org API key or operator); it
    expires after `expires_in` seconds (an hour by default)."""
    body = without_none(
        {"amount": decimal_string(amount), "expires_in": expires_in, "reference": reference}
    )
    return Call(
        "POST",
        f"/orgs/{segment(org)}/members/{segment(member)}/holds",
        parsed(Hold),
        body=body,
        idempotency_key=idempotency_key,
    )


def get_hold(*, org: str, hold: str) -> Call[Hold]:
    """One hold as it stands."""
    return Call("GET", f"/orgs/{segment(org)}/holds/{segment(hold)}", parsed(Hold))


def capture_hold(
    *,
    org: str,
    hold: str,
    amount: Decimal | int,
    metrics: Mapping[str, int] | None = None,
    idempotency_key: str | None = None,
) -> Call[UsageResult]:
    """Charge up to a hold's reserve as usage and release the rest."""
    body = without_none(
        {"amount": decimal_string(amount), "metrics": None if metrics is None else dict(metrics)}
    )
    return Call(
        "POST",
        f"/orgs/{segment(org)}/holds/{segment(hold)}/capture",
        parsed(UsageResult),
        body=body,
        idempotency_key=idempotency_key,
    )


def void_hold(*, org: str, hold: str, idempotency_key: str | None = None) -> Call[Hold]:
    """Release all of a hold."""
    return Call(
        "POST",
        f"/orgs/{segment(org)}/holds/{segment(hold)}/void",
        parsed(Hold),
        idempotency_key=idempotency_key,
    )


def _event(event: UsageEvent) -> dict[str, Any]:
    return without_none(
        {
            "key": event.key,
            "member_id": event.member_id,
            "amount": decimal_string(event.amount),
            "metrics": event.metrics,
            "reference": event.reference,
        }
    )


def _results(body: Any) -> list[UsageEventResult]:
    return [UsageEventResult.model_validate(result) for result in body["results"]]


def charge_usage_batch(*, org: str, events: Sequence[UsageEvent]) -> Call[list[UsageEventResult]]:
    """Charge 1 to 1,000 usage events, each standing alone under its own key; the results
    come in the order sent, refused events with their `code`."""
    body = {"events": [_event(event) for event in events]}
    return Call("POST", f"/orgs/{segment(org)}/usage", _results, body=body)


def access(*, org: str, member: str) -> Call[Access]:
    """Whether the org's pool pays for this member's seat right now, and why."""
    return Call("GET", f"/orgs/{segment(org)}/members/{segment(member)}/access", parsed(Access))
