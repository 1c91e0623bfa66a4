"""The words of the model as enumerations, stored by value."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """What a member may do in its org."""

    OWNER = "owner"
    MANAGER = "manager"
    MEMBER = "member"


class Seat(StrEnum):
    """How a member's seat is paid: by the pool (licensed, unlicensed) or by itself (external)."""

    LICENSED = "licensed"
    UNLICENSED = "unlicensed"
    EXTERNAL = "external"


class MemberStatus(StrEnum):
    """Whether a membership is live; removed members keep their rows and history."""

    ACTIVE = "active"
    REMOVED = "removed"


class AccountKind(StrEnum):
    """The accounts of an org's ledger. Pool and wallets never go below zero."""

    POOL = "pool"
    WALLET = "wallet"
    PURCHASES = "purchases"
    USAGE = "usage"
    METERED = "metered"
    # A parent's credits out with its children, and a child's credits in from its parent:
    # the two sides of the family's transfers, each in its own org's ledger.
    CHILDREN = "children"
    PARENT = "parent"
    EXPIRED = "expired"  # what lots that lapsed left in pools and wallets


# Accounts that close the books: their balances may be negative.
SYSTEM_ACCOUNTS = (
    AccountKind.PURCHASES,
    AccountKind.USAGE,
    AccountKind.METERED,
    AccountKind.EXPIRED,
)


class TransferKind(StrEnum):
    """Why credits moved."""

    PURCHASE = "purchase"  # purchases -> pool
    ALLOCATION = "allocation"  # pool -> wallet, by an admin
    AUTO_ALLOCATION = "auto_allocation"  # pool -> wallet, a bundle on demand
    REVOCATION = "revocation"  # wallet -> pool: revoke, removal, reset
    USAGE = "usage"  # wallet -> usage
    METERING = "metering"  # pool -> metered, seat time
    RECLAIM = "reclaim"  # wallet -> pool: a period's unused automatic credits
    # Between a parent's ledger and a child's: each pair shares one batch id and amount.
    TO_CHILD = "to_child"  # parent: pool -> children
    FROM_PARENT = "from_parent"  # child: parent -> pool
    TO_PARENT = "to_parent"  # child: pool -> parent
    FROM_CHILD = "from_child"  # parent: children -> pool
    EXPIRY = "expiry"  # pool or wallet -> expired: what a lot left at its expiry


class LotSource(StrEnum):
    """Where a lot's credits came from."""

    PURCHASE = "purchase"
    PARENT = "parent"


# A lot's priority: lower is spent first.
DEFAULT_PRIORITY = 50
MAX_PRIORITY = 100


class Period(StrEnum):
    """The span an automatic-allocation budget counts over."""

    WEEK = "week"
    MONTH = "month"


# A parent, its children and their children: no deeper.
MAX_DEPTH = 3


class HoldStatus(StrEnum):
    """The life of a hold: pending until captured, voided or expired."""

    PENDING = "pending"
    CAPTURED = "captured"
    VOIDED = "voided"
    EXPIRED = "expired"


class InvitationStatus(StrEnum):
    """The life of an e-mailed invitation."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    REVOKED = "revoked"
    EXPIRED = "expired"
