"""The `data` of webhook events: the changed objects exactly as the API shows them.

The API's models (api/schemas.py) sit above the services, so the same JSON is written here
from the same views; a test holds the two equal field for field.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from creditpool.domain.amounts import format_credits
from creditpool.domain.policies import OrgSettings
from creditpool.services.events import rfc3339
from creditpool.services.lot_views import ExpiringView, LotView
from creditpool.services.views import (
    BalanceView,
    BatchResult,
    MemberView,
    OrgView,
    TransferView,
    UsageResult,
)

JSON = dict[str, Any]


def _at(instant: Any) -> str | None:
    return None if instant is None else rfc3339(instant)


def balance_json(view: BalanceView) -> JSON:
    """A Balance."""
    return {
        "at": rfc3339(view.at),
        "available": format_credits(view.available),
        "allocated": format_credits(view.allocated),
        "purchased": format_credits(view.purchased),
        "used": format_credits(view.used),
        "metered": format_credits(view.metered),
        "burn_rate_per_day": format_credits(view.burn_rate_per_day),
        "depletes_at": _at(view.depletes_at),
        "expired": format_credits(view.expired),
        "expiring": expiring_json(view.expiring),
    }


def expiring_json(views: Sequence[ExpiringView]) -> list[JSON]:
    """Expiry instants, each with what lapses then."""
    return [{"at": rfc3339(view.at), "amount": format_credits(view.amount)} for view in views]


def settings_json(settings: OrgSettings) -> JSON:
    """An org's Settings."""
    auto, rates, alerts = settings.auto_allocation, settings.seat_rates, settings.alerts
    return {
        "returnable": settings.returnable,
        "auto_allocation": {
            "enabled": auto.enabled,
            "bundle": format_credits(auto.bundle),
            "max_per_member": format_credits(auto.max_per_member),
            "period": None if auto.period is None else str(auto.period),
            "reclaim": auto.reclaim,
        },
        "seat_rates": {
            "licensed": format_credits(rates.licensed),
            "unlicensed": format_credits(rates.unlicensed),
            "external": format_credits(rates.external),
        },
        "alerts": {
            "low_balance": (
                None if alerts.low_balance is None else format_credits(alerts.low_balance)
            ),
            "days_left": alerts.days_left,
        },
        "timezone": settings.timezone,
    }


def org_json(view: OrgView) -> JSON:
    """An Org."""
    return {
        "id": view.id,
        "name": view.name,
        "paused": view.paused,
        "invite_code": view.invite_code,
        "settings": settings_json(view.settings),
        "balance": balance_json(view.balance),
        "usage": dict(view.usage),
        "created_at": rfc3339(view.created_at),
        "parent_id": view.parent_id,
        "rollup": {
            "orgs": view.rollup.orgs,
            "members": view.rollup.members,
            "available": format_credits(view.rollup.available),
            "allocated": format_credits(view.rollup.allocated),
            "used": format_credits(view.rollup.used),
            "metered": format_credits(view.rollup.metered),
            "usage": dict(view.rollup.usage),
        },
    }


def transfer_json(view: TransferView) -> JSON:
    """A Transfer."""
    return {
        "id": view.id,
        "batch_id": view.batch_id,
        "kind": view.kind,
        "from": view.debit_account,
        "to": view.credit_account,
        "amount": format_credits(view.amount),
        "member_id": view.member_id,
        "reference": view.reference,
        "metrics": None if view.metrics is None else dict(view.metrics),
        "actor": view.actor,
        "created_at": rfc3339(view.created_at),
        "lots": [
            {"lot_id": share.lot_id, "amount": format_credits(share.amount)} for share in view.lots
        ],
    }


def member_json(view: MemberView) -> JSON:
    """A Member."""
    return {
        "id": view.id,
        "user_id": view.user_id,
        "email": view.email,
        "name": view.name,
        "role": str(view.role),
        "seat": str(view.seat),
        "status": str(view.status),
        "credits_available": format_credits(view.credits_available),
        "credits_held": format_credits(view.credits_held),
        "credits_allocated": format_credits(view.credits_allocated),
        "credits_used": format_credits(view.credits_used),
        "credits_expiring": expiring_json(view.credits_expiring),
        "auto_allocated": format_credits(view.auto_allocated),
        "auto_allocated_this_period": format_credits(view.auto_allocated_this_period),
        "period_ends_at": _at(view.period_ends_at),
        "usage": dict(view.usage),
        "groups": list(view.groups),
        "access": view.access,
        "joined_at": rfc3339(view.joined_at),
    }


def batch_json(result: BatchResult) -> JSON:
    """The result of an allocation or revocation."""
    return {
        "batch_id": result.batch_id,
        "total": format_credits(result.total),
        "members": [member_json(member) for member in result.members],
    }


def usage_json(result: UsageResult) -> JSON:
    """A charge: the usage transfer and the member after it."""
    return {"transfer": transfer_json(result.transfer), "member": member_json(result.member)}


def lot_json(view: LotView) -> JSON:
    """A Lot."""
    return {
        "id": view.id,
        "source": view.source,
        "parent_lot_id": view.parent_lot_id,
        "amount": format_credits(view.amount),
        "in_pool": format_credits(view.in_pool),
        "in_wallets": format_credits(view.in_wallets),
        "held": format_credits(view.held),
        "used": format_credits(view.used),
        "metered": format_credits(view.metered),
        "moved": format_credits(view.moved),
        "expired": format_credits(view.expired),
        "priority": view.priority,
        "expires_at": _at(view.expires_at),
        "created_at": rfc3339(view.created_at),
    }


def expired_json(
    lapsed: Sequence[tuple[str, int]], from_pool: int, from_wallets: int, balance: BalanceView
) -> JSON:
    """What an expiry took: the lots' shares (as a Transfer's `lots`), from the pool and from
    the wallets, and the org's Balance after."""
    return {
        "lots": [{"lot_id": lot_id, "amount": format_credits(amount)} for lot_id, amount in lapsed],
        "amount": format_credits(from_pool + from_wallets),
        "from_pool": format_credits(from_pool),
        "from_wallets": format_credits(from_wallets),
        "balance": balance_json(balance),
    }
