"""What the API answers, as the client's own frozen types: amounts as `Decimal`, times as
timezone-aware `datetime`. Fields the server adds later are ignored, so an older client keeps
working against a newer server."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Generic, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

Role = Literal["owner", "manager", "member"]
Seat = Literal["licensed", "unlicensed", "external"]
MemberStatus = Literal["active", "removed"]
HoldStatus = Literal["pending", "captured", "voided", "expired"]
InvitationStatus = Literal["pending", "accepted", "revoked", "expired"]
AccessReason = Literal["ok", "removed", "external", "unlicensed", "paused", "no_credits"]

T = TypeVar("T")


class Model(BaseModel):
    """An object of the API: immutable, unknown fields ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list; `next_cursor` fetches the next one (None on the last)."""

    items: list[T]
    next_cursor: str | None


class User(Model):
    """A person with a login."""

    id: str
    email: str
    name: str
    created_at: AwareDatetime


class NewToken(Model):
    """A new personal token: `token` is shown this once."""

    id: str
    token: str
    name: str = ""
    expires_at: AwareDatetime | None = None


class PersonalToken(Model):
    """A personal token as listed, never the token itself."""

    id: str
    name: str
    created_at: AwareDatetime
    last_used_at: AwareDatetime | None
    expires_at: AwareDatetime | None


class Membership(Model):
    """One org the signed-in user belongs to."""

    org_id: str
    org_name: str
    member_id: str
    role: Role


class Me(Model):
    """The signed-in user and its memberships."""

    user: User
    memberships: list[Membership]


class AutoAllocation(Model):
    """Members are topped up from the pool in bundles, up to a cap per member."""

    enabled: bool
    bundle: Decimal
    max_per_member: Decimal
    # Budgets per period (version 1.2): the cap counts per week or month (None: for ever), and
    # with `reclaim` a period's unused automatic credits go back to the pool at its end.
    period: Literal["week", "month"] | None = None
    reclaim: bool = False


class SeatRates(Model):
    """Credits a year that one active seat of each kind burns."""

    licensed: Decimal
    unlicensed: Decimal
    external: Decimal


class Alerts(Model):
    """When the owner hears the pool runs low (None: that alert is off)."""

    low_balance: Decimal | None = None
    days_left: int | None = None


class Settings(Model):
    """An org's settings."""

    returnable: bool
    auto_allocation: AutoAllocation
    seat_rates: SeatRates
    alerts: Alerts | None = None  # version 1.1 servers
    timezone: str = "UTC"  # of period boundaries, an IANA name (version 1.2)


class Balance(Model):
    """An org's credits at one instant, seat burn included."""

    at: AwareDatetime
    available: Decimal
    allocated: Decimal
    purchased: Decimal
    used: Decimal
    metered: Decimal
    burn_rate_per_day: Decimal
    depletes_at: AwareDatetime | None
    # Lots (version 1.2 servers): what lapsed so far, and the next five instants at which
    # lots lapse with what lapses then (the wallets' unheld credits of those lots, and what
    # the seat burn until then leaves of them in the pool).
    expired: Decimal | None = None
    expiring: list[Expiring] = Field(default_factory=list)


class Expiring(Model):
    """Credits that lapse together at one instant (version 1.2)."""

    at: AwareDatetime
    amount: Decimal


class Lot(Model):
    """Credits that entered an org's pool together, and where they are now (version 1.2):
    `amount` = `in_pool` + `in_wallets` + `used` + `metered` + `moved` + `expired`."""

    id: str
    source: Literal["purchase", "parent"]
    parent_lot_id: str | None = None  # the parent's lot a "parent" lot carries down
    amount: Decimal
    in_pool: Decimal
    in_wallets: Decimal  # held credits included
    held: Decimal = Decimal(0)  # of in_wallets, what pending holds keep
    used: Decimal
    metered: Decimal = Decimal(0)  # burnt by seats
    moved: Decimal = Decimal(0)  # to the org's children, or back to its parent
    expired: Decimal
    priority: int  # lower is spent first
    expires_at: AwareDatetime | None
    created_at: AwareDatetime


class LotShare(Model):
    """What one lot gave to a transfer."""

    lot_id: str
    amount: Decimal


class Rollup(Model):
    """An org and all its descendants together (version 1.2): how many orgs and active
    members, their pools' credits now (seat burn included), in wallets, used, burnt by seats,
    and usage metrics summed."""

    orgs: int
    members: int
    available: Decimal
    allocated: Decimal
    used: Decimal
    metered: Decimal
    usage: dict[str, int]


class Org(Model):
    """An organisation with its pool."""

    id: str
    name: str
    paused: bool
    invite_code: str | None
    settings: Settings
    balance: Balance
    usage: dict[str, int]
    created_at: AwareDatetime
    # Pools inside pools (version 1.2 servers): its parent (None at the top of a family) and
    # its figures summed with all its descendants'.
    parent_id: str | None = None
    rollup: Rollup | None = None


class Transfer(Model):
    """One movement of credits from one account to another."""

    id: str
    batch_id: str
    kind: str
    from_: str = Field(alias="from")
    to: str
    amount: Decimal
    member_id: str | None
    reference: str | None
    metrics: dict[str, int] | None
    actor: str
    created_at: AwareDatetime
    # Which lots it moved, in the order they were spent (version 1.2 servers).
    lots: list[LotShare] = Field(default_factory=list)


class NewApiKey(Model):
    """A new org API key: `key` is shown this once."""

    id: str
    key: str


class ApiKey(Model):
    """An org API key as listed, never the key itself."""

    id: str
    name: str
    scopes: list[str]
    created_at: AwareDatetime
    last_used_at: AwareDatetime | None


class InviteLink(Model):
    """The org's invite code and the link that carries it."""

    code: str
    url: str


class Invitation(Model):
    """An e-mailed invitation."""

    id: str
    email: str
    role: Role
    seat: Seat
    status: InvitationStatus
    created_at: AwareDatetime


class Member(Model):
    """A membership with its wallet and usage."""

    id: str
    user_id: str
    email: str
    name: str
    role: Role
    seat: Seat
    status: MemberStatus
    credits_available: Decimal
    credits_held: Decimal
    credits_allocated: Decimal
    credits_used: Decimal
    auto_allocated: Decimal
    # What counts toward the automatic cap this period, and when the period ends (None: no
    # period); version 1.2 servers.
    auto_allocated_this_period: Decimal | None = None
    period_ends_at: AwareDatetime | None = None
    usage: dict[str, int]
    groups: list[str]
    access: bool
    joined_at: AwareDatetime
    # What its wallet holds of lots that expire, by instant (version 1.2 servers).
    credits_expiring: list[Expiring] = Field(default_factory=list)


class Group(Model):
    """A class inside the org."""

    id: str
    name: str
    member_count: int


class Reset(Model):
    """What a reset did, or would do now."""

    removed: int
    revoked: Decimal
    invite_code: str
    invitations_revoked: int | None = None


class BatchResult(Model):
    """An allocation or revocation: one batch of transfers and the members after it."""

    batch_id: str
    total: Decimal
    members: list[Member]


class UsageResult(Model):
    """A usage charge (or a captured hold) and the member after it."""

    transfer: Transfer
    member: Member


class Hold(Model):
    """Credits reserved in a wallet for long work."""

    id: str
    member_id: str
    amount: Decimal
    status: HoldStatus
    captured: Decimal | None
    expires_at: AwareDatetime
    reference: str | None
    created_at: AwareDatetime


class UsageEventResult(Model):
    """What became of one event of a batch: `status` is what the single call would answer."""

    key: str | None
    status: int
    code: str | None = None
    transfer_id: str | None = None


class Access(Model):
    """Whether the org's pool pays for this member's seat right now, and why."""

    access: bool
    reason: AccessReason


@dataclass(frozen=True)
class UsageEvent:
    """One event of a batch charge: a usage charge under a key unique in the org."""

    key: str
    member_id: str
    amount: Decimal | int
    metrics: dict[str, int] | None = None
    reference: str | None = None


@dataclass(frozen=True)
class AutoAllocationChange:
    """Any part of the automatic-allocation policy (None keeps the current value)."""

    enabled: bool | None = None
    bundle: Decimal | int | None = None
    max_per_member: Decimal | int | None = None
    # "week" or "month" makes the cap a budget per period; "off" removes the period.
    period: Literal["week", "month", "off"] | None = None
    reclaim: bool | None = None


@dataclass(frozen=True)
class SeatRatesChange:
    """Any part of the seat rates, in credits a year per seat (None keeps the current value)."""

    licensed: Decimal | int | None = None
    unlicensed: Decimal | int | None = None
    external: Decimal | int | None = None


@dataclass(frozen=True)
class AlertsChange:
    """Both alert thresholds as they should stand (None turns that alert off)."""

    low_balance: Decimal | int | None = None
    days_left: int | None = None


@dataclass(frozen=True)
class SettingsChange:
    """Any part of an org's settings (None keeps the current value)."""

    returnable: bool | None = None
    auto_allocation: AutoAllocationChange | None = None
    seat_rates: SeatRatesChange | None = None
    alerts: AlertsChange | None = None
    timezone: str | None = None  # an IANA name (Europe/Paris), for period boundaries
